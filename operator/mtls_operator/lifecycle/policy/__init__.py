"""Pure decisions about a certificate's life, one small module per decision (like cert-manager's controllers).

Each function takes plain values (spec, what was observed, `now`) and returns a named reason or a plan;
none of them performs I/O, so they are unit-tested with a fixed clock and no cluster.
"""
