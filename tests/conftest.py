import torch

# The test models are tiny: one thread is faster than two and immune to oversubscription.
torch.set_num_threads(1)
