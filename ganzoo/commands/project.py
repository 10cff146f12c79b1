"""``ganzoo project``: GAN inversion (argument parsing only; the work is in ``ganzoo/editing/``).

The parser uses the standard library only, so ``ganzoo project --help`` imports no torch.
"""

from __future__ import annotations

import argparse

EXAMPLES = """\
examples:
  ganzoo project runs/sg2 photo.png                         # W space, 1000 steps (StyleGAN2-ADA's projector)
  ganzoo project runs/sg2 a.png b.png --space w+ --steps 500
  ganzoo project runs/sg2 --from-data test --n 8 --seed 0   # 8 held-out images of the run's own dataset
  ganzoo project runs/bg --from-data test --n 8 --class 3 --optimize-class   # BigGAN: z and the class embedding
  ganzoo project runs/dcgan big_photo.jpg --resize          # convert channels, centre-crop and resize first
  ganzoo project runs/vq photo.png                          # a VQ tokenizer: encode to codes (no optimisation)

Distance: LPIPS-VGG16 (weights from --lpips-weights, the torch hub cache, or a download unless --no-download);
without them the ssim-l1 pixel distance is used and said so (--distance ssim-l1 chooses it explicitly).
Writes <run>/projected/<images>_<space>[_<distance>]/: latent.safetensors, target_vs_projection.png,
mean_latent.png, optimization.gif, metrics.json. See docs/editing.md.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ganzoo project", description="Project real images into a run's latent "
                                "space (W, W+ or Z), or encode them to codes with a VQ tokenizer.",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="RUN", help="run folder, checkpoints/ folder or snapshot-*.safetensors")
    p.add_argument("images", metavar="IMAGE", nargs="*", help="PNG/JPEG files at the model's size and channels")
    p.add_argument("--from-data", metavar="SPLIT", default=None,
                   help="project images of the run's own dataset split instead (e.g. test, train)")
    p.add_argument("--n", type=int, default=None, help="with --from-data: how many images (default 8)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the noise draws, and of which dataset images --from-data takes (default 0)")
    p.add_argument("--space", choices=("w", "w+", "z"), default=None,
                   help="w (default for style models), w+ (one w per layer), z (default for other GANs)")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (default 1000)")
    p.add_argument("--lr", type=float, default=None, help="peak Adam learning rate (default 0.1)")
    p.add_argument("--noise-reg", type=float, default=None,
                   help="weight of the noise-image autocorrelation regulariser (default 1e5)")
    p.add_argument("--class", dest="cls", metavar="K", type=int, default=None,
                   help="class of every image (class-conditional models; required there)")
    p.add_argument("--optimize-class", action="store_true",
                   help="also optimise the class embedding vector (BigGAN's shared embedding)")
    p.add_argument("--distance", choices=("auto", "lpips", "ssim-l1"), default=None,
                   help="auto (default: LPIPS-VGG16 if its weights are found, else ssim-l1), lpips, ssim-l1")
    p.add_argument("--lpips-weights", default=None, help="torchvision vgg16-397923af.pth for LPIPS")
    p.add_argument("--no-download", action="store_true", help="never download LPIPS weights")
    p.add_argument("--resize", action="store_true",
                   help="convert channels, centre-crop and resize images that do not fit the model")
    p.add_argument("--batch", type=int, default=None, help="images projected together (default: all)")
    p.add_argument("--gif-frames", type=int, default=None, help="about how many frames optimization.gif gets "
                   "(default 50)")
    p.add_argument("--save-every", type=int, default=None, help="a GIF frame every N steps instead of --gif-frames")
    p.add_argument("--out", default=None, help="output folder (default <run>/projected/<name>)")
    p.add_argument("--raw", action="store_true", help="use the trained weights, not the EMA copy")
    p.add_argument("--device", default="auto", help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:1, mps")
    return p


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from ..editing.project_run import run_project

    run_project(args)
    return 0
