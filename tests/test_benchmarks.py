"""The training benchmark runs end to end on a small setting and reports what it claims to."""
import re

import pytest
import torch
from PIL import Image

from cvae_tutorial.benchmarks.celeba_folder import official_partitions, write_celeba_folder
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


def test_parallel_writers_write_the_same_folder(tmp_path):
    one = write_celeba_folder(tmp_path / "one", [0] * 70 + [2] * 5)  # two blocks of 64
    two = write_celeba_folder(tmp_path / "two", [0] * 70 + [2] * 5, num_workers=2)
    assert (one == two).all()
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt", "img_align_celeba/000001.jpg",
                 "img_align_celeba/000075.jpg"):
        assert (tmp_path / "one/celeba" / name).read_bytes() == \
            (tmp_path / "two/celeba" / name).read_bytes(), name
    assert (tmp_path / "one/celeba/img_align_celeba/000001.jpg").read_bytes() != \
        (tmp_path / "one/celeba/img_align_celeba/000065.jpg").read_bytes()


def test_official_split_sizes():
    full = official_partitions(202_599)
    assert [full.count(part) for part in (0, 1, 2)] == [162_770, 19_867, 19_962]
    assert full == sorted(full)  # contiguous, as CelebA's list_eval_partition.txt
    small = official_partitions(300)
    assert [small.count(part) for part in (0, 1, 2)] == [241, 29, 30]
    assert [official_partitions(3).count(part) for part in (0, 1, 2)] == [1, 1, 1]


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
    assert "of matmul peak" in printed and "bf16 peak: not measured on a CPU" in printed
    loader = results["loader"]
    assert loader["images"] == 32 and loader["jpeg_images_per_s"] > 0
    assert loader["cache_images_per_s"] > 0
    row = results["training"][16]["sigma"]
    assert row["off"]["options"]["adam"] == "for-loop" and row["on"]["options"]["adam"] == "foreach"
    for setting in ("off", "on"):
        assert row[setting]["images_per_s"] > 0 and row[setting]["fraction_of_peak"] > 0
        assert row[setting]["fraction_of_bf16_peak"] is None  # no bf16 peak on a CPU
        # an epoch of CelebA's 162,770 training images in full batches of 16: 162,768 images
        assert row[setting]["celeba_epoch_s"] * row[setting]["images_per_s"] == \
            pytest.approx(162_768)
        assert f"CelebA epoch {row[setting]['celeba_epoch_s']:7.0f} s" in printed


def test_benchmark_times_each_batch_size_once(capsys):
    results = main(["--jpeg-images", "32", "--batch-sizes", "16", "8", "16", "--image-size",
                    "16", "--rounds", "1", "--steps", "1", "--warmup", "0", "--models",
                    "gaussian", "--workers", "0", "--matmul-size", "64"])
    assert list(results["training"]) == [8, 16]
    printed = capsys.readouterr().out
    assert "batch 8," in printed and "batch 16," in printed


def test_tiny_rehearsal_runs_chapter_5_and_times_each_phase(tmp_path, capsys):
    from cvae_tutorial.benchmarks.__main__ import main as benchmarks
    from cvae_tutorial.benchmarks.rehearsal import _written_before
    options = ["--out", str(tmp_path), "--images", "150", "--epochs", "1", "--image-size", "16",
               "--latent-dim", "4", "--batch-size", "32", "--models", "sigma_flow",
               "--workers", "0", "--eval-samples", "8", "--iw-samples", "2",
               "--feature-space", "attribute"]
    benchmarks(["rehearsal", *options])
    printed = capsys.readouterr().out
    split = [official_partitions(150).count(part) for part in (0, 1, 2)]
    assert split == [121, 15, 14]
    assert "150 images (121 train, 15 valid, 14 test)" in printed
    for phase in ("write JPEGs", "cache build and load", "train sigma_flow", "evaluate", "total"):
        assert re.search(rf"^   {phase} +\d+\.\d s$", printed, re.MULTILINE), phase
    folder = tmp_path / "celeba"
    assert len(list((folder / "img_align_celeba").iterdir())) == 150
    assert (folder / "list_attr_celeba.txt").read_text().splitlines()[1].split()[:2] == \
        ["5_o_Clock_Shadow", "Arched_Eyebrows"]  # CelebA's 40 names, in order
    assert (tmp_path / "runs" / "sigma_flow" / "checkpoint.pt").exists()
    assert (tmp_path / "runs" / "results.csv").exists()
    assert _written_before(tmp_path, 150) and not _written_before(tmp_path, 151)  # reused once


def test_profile_counts_the_ops_and_syncs_of_one_more_step(capsys):
    from cvae_tutorial.benchmarks.profile import main as profile
    results = profile(["--models", "sigma_flow", "--image-size", "16", "--batch-size", "4",
                       "--steps", "1", "--adam", "fused"])
    row = results["sigma_flow"]
    assert row["aten_ops"] > 100 and row["kernel_launches"] == 0  # a CPU launches no kernels
    # the loop reads the losses back every LOSS_READ_INTERVAL steps with the fused Adam: one
    # more step adds no .item()/bool(tensor) outside Adam's own step
    assert row["syncs"] == {}
    assert "host-device syncs: none" in capsys.readouterr().out


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


def test_evaluation_benchmark_counts_one_draw_and_one_reading_per_image_set(capsys):
    # a row reads N samples, N shuffled-label samples and A flip sets of N (N < flip_samples);
    # a second sampling of any set (the bug this layer removed) shows in every count
    from cvae_tutorial.benchmarks.evaluation import main as evaluation_main

    evaluation_main(["--num-samples", "40", "--image-size", "16"])
    out = capsys.readouterr().out
    counts = {name: int(count) for name, count in
              re.findall(r"^  (classifier|decoder|encoder|prior latents)\s+(\d+) images", out,
                         re.M)}
    attributes = 10
    assert counts["classifier"] == (2 + attributes) * 40
    assert counts["prior latents"] == (3 + attributes) * 40  # + the prior hole's second draw
    assert counts["decoder"] == (2 + attributes) * 40 + 16 * 4  # + the IW bound's K x images
    assert counts["encoder"] == 40 + 16
    assert re.search(r"s per row", out)
