"""The training benchmark runs end to end on a small setting and reports what it claims to."""
import re

import pytest
import torch
from PIL import Image

from cvae_tutorial.benchmarks.celeba_folder import write_celeba_folder
from cvae_tutorial.benchmarks.training import flops_per_image, main
from cvae_tutorial.cvae import CVAEConfig
from cvae_tutorial.data import load_celeba


def test_generated_folder_is_celeba_shaped(tmp_path):
    labels = write_celeba_folder(tmp_path, [0] * 5)
    jpegs = sorted((tmp_path / "celeba" / "img_align_celeba").iterdir())
    assert len(jpegs) == 5
    with Image.open(jpegs[0]) as image:
        assert image.size == (178, 218) and image.format == "JPEG"
    data = load_celeba(tmp_path, "train", 32, cache_dir=tmp_path / "cache", num_workers=0)
    assert len(data) == 5 and data.num_attributes == 40
    assert (data.labels == torch.as_tensor(labels).float()).all()


def test_flops_are_counted_per_image():
    config = CVAEConfig(model="sigma_flow", image_size=16, num_attributes=40, latent_dim=4,
                        base_channels=8)
    per_image = flops_per_image(config, batch_size=2)
    assert per_image > 0 and flops_per_image(config, batch_size=6) == pytest.approx(per_image)
    bigger = CVAEConfig(**{**config.to_dict(), "image_size": 32})
    assert flops_per_image(bigger, batch_size=2) > 3 * per_image  # convolutions scale with pixels


def test_small_benchmark_prints_every_ratio(capsys):
    results = main(["--jpeg-images", "32", "--batch-size", "16", "--image-size", "16",
                    "--rounds", "1", "--steps", "1", "--warmup", "1", "--models", "sigma",
                    "--workers", "0", "--matmul-size", "128", "--cpu-bf16"])
    printed = capsys.readouterr().out
    assert "per-image JPEG pipeline" in printed and "ratio" in printed
    assert "speed-up vs off: on" in printed and "on+bf16" in printed
    assert "of matmul peak" in printed
    loader = results["loader"]
    assert loader["images"] == 32 and loader["jpeg_images_per_s"] > 0
    assert loader["cache_images_per_s"] > 0
    row = results["training"]["sigma"]
    assert row["off"]["options"]["adam"] == "for-loop" and row["on"]["options"]["adam"] == "foreach"
    for setting in ("off", "on"):
        assert row[setting]["images_per_s"] > 0 and row[setting]["fraction_of_peak"] > 0


def test_benchmark_arguments_are_checked():
    with pytest.raises(SystemExit):
        main(["--jpeg-images", "8", "--batch-size", "16"])


@pytest.mark.parametrize("benchmark, options, named", [
    ("fid", ["--batch-size", "0"], r"--batch-size must be at least 1"),
    ("fid", ["--image-size", "30"], r"image_size=30 is not supported"),
    ("train", ["--image-size", "30"], r"image_size=30 is not supported"),
    pytest.param("fid", ["--device", "cuda"], r"CUDA is not available",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has CUDA")),
    ("train", ["--device", "nonsense"], r"unknown device 'nonsense'")])
def test_benchmark_options_are_one_line_before_any_work(benchmark, options, named, capsys):
    from cvae_tutorial.benchmarks.__main__ import main as benchmarks
    with pytest.raises(SystemExit) as stopped:
        benchmarks([benchmark, *options])
    assert stopped.value.code == 2  # argparse's usage error, not a traceback
    error = capsys.readouterr().err
    assert re.search(named, error) and "Traceback" not in error
