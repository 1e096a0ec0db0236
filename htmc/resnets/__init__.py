"""ResNets (DESIGN §2.4): the batched model (model; numpy_net holds the torch-free forward pass), the norm
registry (norms), batched proximal training (training) and the compiler of a net into a verified circuit
(to_circuit)."""
