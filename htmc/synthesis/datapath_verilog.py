"""Word-level Verilog of a datapath, synthesized by Yosys then ABC (stub)."""
def yosys_circuit(tree, d, k, domain, fmt, decoder):
    return None
