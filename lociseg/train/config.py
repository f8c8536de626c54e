"""The experiment configuration saved beside every checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..config import Config, bounded, to_dict
from ..errors import ConfigError
from ..models.checkpoint import upgrade_config
from ..models.lacss import LacssConfig
from ..models.unet import UNetConfig


@dataclass
class AugmentConfig(Config):
    """Random augmentation of training crops.

    The crops are cut from percentile-normalised images, so the imaging
    augmentations (``illumination`` to ``blank_channel_p``) treat a crop as a
    linear copy of the camera's counts, change it the way a lab's imaging
    would, then undo the affine part (floor and dimming) as the percentile
    normalisation at inference does. What is left is what survives
    normalisation: clipped highlights, quantisation steps, shot and read noise
    relative to the signal, uneven illumination and a missing channel.
    Each one is drawn with its own probability; at probability 0 it draws
    nothing, so runs without it keep their exact batches.

    Attributes
    ----------
    flips : bool
        Random flips and 90-degree rotations.
    scale_min, scale_max : float
        Log-uniform scale jitter range.
    gain, gamma, noise : float
        Per-channel intensity gain in [1-gain, 1+gain], gamma exp(N(0, gamma)),
        Gaussian noise of this standard deviation (normalised units).
    illumination_p, illumination : float
        Probability of uneven illumination: a smooth multiplicative field
        (a tilted plane times a vignette, per crop) falling to ``1 -
        illumination`` at its darkest.
    dim_p, dim_min : float
        Probability of a dim stain: the signal times a log-uniform factor in
        [``dim_min``, 1] under camera noise (read noise ``read_noise`` when
        shot noise is not drawn) and quantisation, then scaled back, so only
        the signal-to-noise ratio and the number of grey levels drop.
    offset_p, offset_max : float
        Probability of a camera floor (background offset) of up to
        ``offset_max`` times the signal range; it adds shot noise and takes
        grey levels from the signal when quantised.
    shot_noise_p, photons_min, read_noise : float
        Probability of Poisson-Gaussian noise: Poisson counts at a log-uniform
        ``photons_min`` to ``10 * photons_min`` photons per signal range, plus
        Gaussian read noise of up to ``read_noise`` (normalised units).
    saturate_p, saturate_quantile : float
        Probability of saturation: each channel clipped at the q-th quantile
        of its pixels above its mean (the stained ones), q uniform in
        [``saturate_quantile``, 0.99], and rescaled so the clip is 1 (as
        re-normalising a saturated image does).
    quantize_p : float
        Probability of requantising to ``quantize_bits`` bits over a full
        scale of 1 to 1.5 times the crop's maximum (the clip when saturated).
    quantize_bits : int
        Bit depth of the requantisation (8: an 8-bit camera or export).
    blank_channel_p : float
        Multi-channel models: probability that one channel other than the
        first is absent (zeros) or blank (a stain that failed: camera noise,
        which percentile normalisation stretches to the full range).
    """

    flips: bool = True
    scale_min: float = bounded(0.8, gt=0)
    scale_max: float = bounded(1.25, gt=0)
    gain: float = bounded(0.2, ge=0, le=1)
    gamma: float = bounded(0.2, ge=0)
    noise: float = bounded(0.02, ge=0)
    illumination_p: float = bounded(0.0, ge=0, le=1)
    illumination: float = bounded(0.5, ge=0, le=1)
    dim_p: float = bounded(0.0, ge=0, le=1)
    dim_min: float = bounded(0.3, gt=0, le=1)
    offset_p: float = bounded(0.0, ge=0, le=1)
    offset_max: float = bounded(0.5, ge=0)
    shot_noise_p: float = bounded(0.0, ge=0, le=1)
    photons_min: float = bounded(100.0, gt=0)
    read_noise: float = bounded(0.02, ge=0)
    saturate_p: float = bounded(0.0, ge=0, le=1)
    saturate_quantile: float = bounded(0.8, gt=0, le=1)
    quantize_p: float = bounded(0.0, ge=0, le=1)
    quantize_bits: int = bounded(8, ge=1, le=16)
    blank_channel_p: float = bounded(0.0, ge=0, le=1)

    def validate(self, where: str = "") -> None:
        """The scale range must not be empty."""
        if self.scale_min > self.scale_max:
            pre = f"{where}." if where else ""
            raise ConfigError(f"{pre}scale_min must be <= {pre}scale_max, got {self.scale_min} > {self.scale_max}")


@dataclass
class DataConfig(Config):
    """What the model trains and validates on.

    Attributes
    ----------
    train, val : list of str
        Data set specs for :func:`lociseg.data.load_dataset` (``bbbc018@train``,
        ``dsb2018-train``, ``koyuncu@train``, folders ...).
    channels : list of str or int
        Channels by name or index, in model order (e.g. ``["actin", "DNA"]``
        or ``[1, 0]``).
    annotations : list of str
        Weak modes: one ``lociseg annotate`` output folder per training spec
        (points + foreground); ``from-labels`` derives them from the labels.
    label_source : {"gt", "machine"}
        What a supervised run trains on: ``gt``, the data set's labels;
        ``machine``, the machine-made cells of the ``annotations`` folders
        (pseudo-labels: zero manual labels, the data set's own are ignored).
    diameter : float
        Median cell diameter (px) of the training images; 0 = from the labels
        (median equivalent-circle diameter) or, in weak modes, from the
        spacing of the annotated points.
    diameter_per_image : bool
        With ``diameter`` 0 and labels, rescale each image by its own median
        cell diameter (mixed data sets such as DSB2018 vary 10x in scale);
        otherwise one median over the training set.
    crop_size : int
        Training crop side at model scale (multiple of 32).
    sampler : {"random", "points"}
        Where crops lie: ``random``, anywhere (images drawn by area);
        ``points``, centred on an annotated point drawn uniformly over all
        points of all images (weak modes; one cell in the middle of each
        patch, as the 2021 points-only method trained).
    """

    train: list[str] = field(default_factory=lambda: ["bbbc018@train"])
    val: list[str] = field(default_factory=lambda: ["bbbc018@val"])
    channels: list[int | str] = field(default_factory=lambda: ["actin", "DNA"])
    annotations: list[str] = field(default_factory=list)
    label_source: Literal["gt", "machine"] = "gt"
    diameter: float = bounded(0.0, ge=0)
    diameter_per_image: bool = True
    crop_size: int = bounded(256, ge=32, multiple_of=32)
    sampler: Literal["random", "points"] = "random"
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class OptimConfig(Config):
    """Optimiser, schedule and run control.

    Attributes
    ----------
    lr, weight_decay : float
        AdamW settings.
    warmup_steps, steps : int
        Linear warm-up, then cosine decay to 0 at ``steps``.
    batch_size : int
    grad_clip : float
        Gradient-norm clipping (0: off).
    amp : bool
        Mixed precision (bfloat16) on CUDA; ignored on CPU.
    seed : int
        Every random choice is a function of (seed, step).
    val_every, log_every : int
        Validation and logging intervals in steps.
    select_best : bool
        Keep the checkpoint with the best validation F1@0.5 as ``best``.
        Weak experiments that must not touch any label set it false, so
        ``best`` is the last model.
    budget_minutes : float
        Stop (and save) after this wall-clock time (0: no limit).
    checkpoint_every, checkpoint_minutes : int, float
        Write ``last/`` (atomically, with the state for ``--resume``) every
        this many steps and at least this often in minutes (0: off); it is
        also written at the end and on SIGTERM/SIGINT.
    threads : int
        torch CPU threads (0: torch's default).
    workers : int
        Processes that build the next batches while the model trains (0:
        built in the loop). Worth it on a GPU, which otherwise waits on the
        crops; the batches are the same either way.
    channels_last : bool
        Run the LACSS encoder (and the images) in the channels-last memory
        format: on CPU the backward pass of its depthwise 7x7 convolutions is
        several times faster in it. The heads stay in the standard layout (they
        are slower in channels-last). Same losses up to float rounding; the
        saved weights are the same plain tensors either way.
    compile : bool
        ``torch.compile`` the model's dense pass (backbone, FPN, heads). The
        first steps pay the compilation; on a 2-core AVX2 CPU it made steps
        slower (about 0.93x), as the convolutions, not the small operators
        it fuses, take the time there (``benchmarks/bench_train_speed.py``).
    cpu_bf16 : bool
        bfloat16 autocast on CPUs with native bfloat16 (``avx512_bf16`` or
        AMX in ``/proc/cpuinfo``); float32 on others, where it would be slower.
    """

    lr: float = bounded(2e-3, gt=0)
    weight_decay: float = bounded(0.05, ge=0)
    warmup_steps: int = bounded(200, ge=0)
    steps: int = bounded(3000, ge=1)
    batch_size: int = bounded(4, ge=1)
    grad_clip: float = bounded(1.0, ge=0)
    amp: bool = True
    seed: int = bounded(0, ge=0)
    val_every: int = bounded(250, ge=1)
    log_every: int = bounded(10, ge=1)
    select_best: bool = True
    budget_minutes: float = bounded(0.0, ge=0)
    checkpoint_every: int = bounded(200, ge=0)
    checkpoint_minutes: float = bounded(10.0, ge=0)
    threads: int = bounded(0, ge=0)
    workers: int = bounded(0, ge=0)
    channels_last: bool = True
    compile: bool = False
    cpu_bf16: bool = False


#: Options of older config layouts that nothing reads any more (dropped on load).
@dataclass
class ExperimentConfig(Config):
    """A whole training run: model type and settings, data, optimisation.

    Both model sections exist (so ``--set model_type=unet --set unet.depth=3``
    works), but :meth:`to_dict` and the YAML written beside a checkpoint hold
    only the one ``model_type`` selects.

    Attributes
    ----------
    init : str
        Start from this trained model's weights instead of random ones: a
        shipped model name (``cells``) or a checkpoint / run folder. Its
        input channels, backbone and scale must be the ones this config
        builds (fine-tuning). Empty: random initialisation.
    """

    model_type: Literal["lacss", "unet"] = "lacss"
    lacss: LacssConfig = field(default_factory=LacssConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    init: str = ""

    @classmethod
    def from_dict(cls, data: dict | None) -> ExperimentConfig:
        """Build from (possibly sparse, possibly old-layout) nested dictionaries; missing options keep their defaults."""
        return super().from_dict(upgrade_config(data))

    def to_dict(self) -> dict:
        """Every option, with the section of the selected model type only."""
        unused = "unet" if self.model_type == "lacss" else "lacss"
        return {k: v for k, v in to_dict(self).items() if k != unused}

    @property
    def model(self) -> LacssConfig | UNetConfig:
        """The config of the selected model type."""
        return self.lacss if self.model_type == "lacss" else self.unet

    @property
    def weak(self) -> bool:
        """Whether training uses weak annotations instead of labels."""
        return self.model.weakly_supervised
