"""CA keys held in a PKCS#11 token (an HSM, or SoftHSM2 in tests): the key never leaves the token.

An I/O layer beside `kube`: it talks to a device through the vendor's PKCS#11 library (python-pkcs11), and gives
the rest of the operator `cryptography` private-key objects whose `sign()` calls the token.
"""
