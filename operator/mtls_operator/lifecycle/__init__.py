"""One certificate's life: the attempt types, pure policy, key storage, signers, the reconciler, CA publishing."""
