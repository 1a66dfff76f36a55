"""The mesh CA: roots and intermediates, CSR signing for SPIFFE identities, join tokens."""
