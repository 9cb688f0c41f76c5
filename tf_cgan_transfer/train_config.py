"""The typed configuration of a training run: `TrainConfig` and its `OptimizerConfig`.

Built once by the command line (`train.config_from_flags`) or by Python callers
(benchmarks, tests) and read by `trainer.Trainer`; library code never sees flags.
"""

import dataclasses
from typing import Optional, Tuple

from tf_cgan_transfer import data
from tf_cgan_transfer import limited_data
from tf_cgan_transfer import model_io
from tf_cgan_transfer import periodic_eval
from tf_cgan_transfer import transfer


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    g_lr: float = 1e-4
    d_lr: float = 4e-4
    g_beta1: float = 0.0
    g_beta2: float = 0.999
    d_beta1: float = 0.0
    d_beta2: float = 0.999
    epsilon: float = 1e-6
    # Multipliers of g_lr for kp_bn's mixtures A, residuals R and old-class offsets P
    # (bn_only: R); p_lr_scale=0 freezes P. (`scaled_adam`)
    a_lr_scale: float = 1.0
    r_lr_scale: float = 1.0
    p_lr_scale: float = 1.0
    # One Adam update call for all of a model's variables (`optimizers.FusedAdam`); False:
    # Keras' update per variable. Either is XLA-compiled from `XLA_UPDATE_MIN_PARAMETERS`.
    fused_updates: bool = True

    def lr_scales(self):
        return dict(a=self.a_lr_scale, r=self.r_lr_scale, p=self.p_lr_scale)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs.

    `batch_size` is the global batch of one micro-batch; an iteration runs `num_d_steps`
    D updates and one G update, each over `grad_accumulation` micro-batches (effective
    batch = batch_size * grad_accumulation, like BigGAN's 256 x 8).

    `mixed_precision` is a `precision.POLICIES` name (models compute in bfloat16 or
    float16, variables and statistics stay float32); `jit_compile` compiles each
    replica's forward and backward pass with XLA.

    `augment` ("none" or "diffaugment", with the ops of `augment_policy`) and
    `lecam_weight` (0: off) are the limited-data aids of `limited_data`; they change D's
    inputs and loss, for every method and stage. The dataclass defaults to the paper's
    step (no augmentation); the `train` command line defaults to DiffAugment.
    """

    model_dir: str
    data: data.DataConfig
    method: str = "kp_bn"
    stage: Optional[str] = None
    source: Optional[str] = None
    source_ema: bool = False
    bn_checkpoint: Optional[str] = None
    residual_init: str = "zeros"
    mixture_init: str = "orthogonal"
    mixture_spectral_norm: bool = True
    freeze_d_blocks: int = 2
    architecture: transfer.ArchitectureConfig = transfer.ArchitectureConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    batch_size: int = 16
    grad_accumulation: int = 1
    num_d_steps: int = 1
    train_steps: int = 1000
    # Iterations per compiled call (`train_step.GANStep.train_steps`); calls end where a
    # log, sample, evaluation or checkpoint is due, so the hooks see the same steps.
    steps_per_call: int = 1
    l1_scale: float = 0.01
    l2_scale: float = 0.1
    ema_decay: float = 0.0
    ema_start: int = 0
    augment: str = "none"
    augment_policy: Tuple[str, ...] = limited_data.DEFAULT_POLICY
    lecam_weight: float = 0.0
    lecam_decay: float = limited_data.LECAM_DECAY
    seed: int = 0
    deterministic: bool = False
    mixed_precision: str = "float32"
    jit_compile: bool = False
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 50
    sample_every: int = 500
    samples_per_class: int = 4
    standing_stats_batches: int = 8
    eval_every: int = 0
    eval_num_images: int = 1000
    eval_batch_size: int = 50
    classifier: Optional[str] = None
    eval_cache_dir: Optional[str] = None
    # Real images of periodic evaluation; None: `data` (with images_per_class, the capped
    # training subset, repeated up to eval_num_images; the evaluations say so).
    eval_data: Optional[data.DataConfig] = None
    best_metric: str = periodic_eval.DEFAULT_BEST_METRIC
    # The classifier's index of each new class (class accuracy of generated images);
    # None: the classifier does not know the new classes.
    classifier_classes: Optional[Tuple[int, ...]] = None
    # Names files of the new and old classes; None: the data's and the source's names.
    class_names: Optional[str] = None
    source_class_names: Optional[str] = None

    def transfer_config(self, num_new_classes):
        """The `transfer.TransferConfig` of this run for the data's class count."""
        return transfer.TransferConfig(
            method=self.method,
            num_new_classes=num_new_classes,
            stage=self.stage,
            residual_init=self.residual_init,
            mixture_init=self.mixture_init,
            mixture_spectral_norm=self.mixture_spectral_norm,
            freeze_d_blocks=self.freeze_d_blocks,
            resolution=self.data.resolution,
            seed=self.seed,
        )

    @property
    def resolved_stage(self):
        return transfer.resolve_stage(self.method, self.stage)

    @property
    def layout(self):
        return model_io.RunLayout(self.model_dir)
