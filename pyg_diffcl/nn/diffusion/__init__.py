from .gaussian_diffusion import GaussianDiffusion, timestep_embedding
from .step_sampler import StepSampler
from .denoiser import DenoisingMLP
from .view_generator import DiffusionViewGenerator
from .cg_block import CGBlock
from .pg_block import PGBlock
from .cnet import CNet
from .graph_diffusion import ModalityGraphDiffusion

__all__ = ['GaussianDiffusion', 'timestep_embedding', 'StepSampler', 'DenoisingMLP', 'DiffusionViewGenerator',
           'CGBlock', 'PGBlock', 'CNet', 'ModalityGraphDiffusion']
