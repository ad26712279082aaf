from mtls_operator.runtime.cli import main

raise SystemExit(main())
