"""The MtlsCertificate API vocabulary: names, the spec reader, status helpers. Imports only pki."""
