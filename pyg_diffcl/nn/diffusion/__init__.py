from .gaussian_diffusion import GaussianDiffusion, timestep_embedding
from .denoiser import DenoisingMLP
from .view_generator import DiffusionViewGenerator

__all__ = ['GaussianDiffusion', 'timestep_embedding', 'DenoisingMLP', 'DiffusionViewGenerator']
