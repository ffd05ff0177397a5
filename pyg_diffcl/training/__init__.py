r"""Model-agnostic training: configuration, the BPR trainer, and run directories."""
from .config import RunConfig, DataConfig, TrainConfig, EvalConfig, resolve_config, load_yaml, parse_set
from .distributed import DistContext, ShardedSampler, init_distributed
from .trainer import Trainer, FitResult, EpochRecord, early_stop, model_scores
from .run import train_run, resume_run, evaluate_run, recommend_run, load_run, prepare

__all__ = [
    'RunConfig', 'DataConfig', 'TrainConfig', 'EvalConfig', 'resolve_config', 'load_yaml', 'parse_set',
    'Trainer', 'FitResult', 'EpochRecord', 'early_stop', 'model_scores', 'DistContext', 'ShardedSampler',
    'init_distributed',
    'train_run', 'resume_run', 'evaluate_run', 'recommend_run', 'load_run', 'prepare',
]
