"""Binary circuits over B2 (DESIGN §2.1): the IR and its simulation (circuit), the circuit builder with adders and
multipliers (builder), the verifier, the one place a circuit's error is computed (verify), BLIF and hex-table
I/O (blif, hextable)."""
