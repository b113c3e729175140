"""`mberil sim-demo` / `mberil demo`: table output, plot, and one-line errors on bad input."""

import pytest

from mberil_ros.cli import main


def test_sim_demo_prints_table_and_plot(tmp_path, capsys):
    png = tmp_path / "traj.png"
    rc = main(["sim-demo", "--episodes", "2", "--seed", "3", "--plot", str(png)])
    out = capsys.readouterr().out
    assert rc == 0
    for word in ("expert", "noisy", "detour", "greedy", "heldout_init", "heldout_obstacles",
                 "success", "collisions/ep"):
        assert word in out
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_demo_with_layouts(tmp_path, capsys):
    f = tmp_path / "l.yaml"
    f.write_text("layouts:\n  - {name: a, target: [0.38, -0.25, 0.06]}\n")
    assert main(["sim-demo", "--layouts", str(f), "--demonstrators", "expert"]) == 0
    out = capsys.readouterr().out
    assert "layouts:right" in out and "1.00" in out


@pytest.mark.parametrize("argv,needle", [
    (["--suite", "nope"], "unknown suite"),
    (["--seed", "-1"], "--seed"),
    (["--seed", "1.5"], "--seed"),
    (["--episodes", "0"], "--episodes"),
    (["--arm", "tail"], "--arm"),
    (["--urdf", "/nonexistent/robot.urdf"], "--urdf"),
    (["--demonstrators", "oracle"], "oracle"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, needle):
    assert main(["sim-demo", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err


def test_broken_urdf_content(tmp_path, capsys):
    bad = tmp_path / "broken.urdf"
    bad.write_text("<robot name='x'><link name='WAIST'/></robot>")
    assert main(["sim-demo", "--urdf", str(bad), "--episodes", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "broken.urdf" in err


def test_bad_layouts_file(tmp_path, capsys):
    f = tmp_path / "l.yaml"
    f.write_text("layouts: [{target: [1, 2]}]\n")
    assert main(["sim-demo", "--layouts", str(f)]) == 2
    err = capsys.readouterr().err
    assert "l.yaml" in err and "layouts[0].target" in err


def test_sim_dataset_generates_in_parallel_and_merges_into_one_dataset(tmp_path):
    from mberil_ros.algos.data import OfflineData
    from mberil_ros.cli import main
    from mberil_ros.data.dataset import Dataset

    out = tmp_path / "ds"
    assert main(["sim-dataset", str(out), "--expert", "3", "--suboptimal", "2",
                 "--expert-fraction", "0.5", "--jobs", "2", "--seed", "7"]) == 0
    ds = Dataset(out)
    labels = [m["label"] for m in ds.episodes]
    assert labels.count("expert") == 3 and labels.count("suboptimal") == 2
    seeds = [m["seed"] for m in ds.episodes]
    assert len(set(seeds)) == 5 and min(seeds) >= 7
    assert [m["source_episode"] for m in ds.episodes] == list(range(5))
    assert sum(m["demonstrator"] == "expert" for m in ds.episodes) == 4  # 1 of 2 unlabeled
    assert ds.num_frames == sum(m["length"] for m in ds.episodes)
    OfflineData(out)  # the trainer reads it
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers
    assert main(["sim-dataset", str(out), "--expert", "1", "--suboptimal", "0"]) == 2


def test_sim_dataset_settle_ticks_lengthen_successful_episodes_by_exactly_that(tmp_path,
                                                                               capsys):
    from mberil_ros.cli import main
    from mberil_ros.data.dataset import Dataset

    lengths = {}
    for settle in (0, 30):
        out = tmp_path / f"s{settle}"
        assert main(["sim-dataset", str(out), "--expert", "2", "--suboptimal", "0",
                     "--jobs", "1", "--seed", "11", "--settle-ticks", str(settle)]) == 0
        lengths[settle] = [m["length"] for m in Dataset(out).episodes]
    assert [b - a for a, b in zip(lengths[0], lengths[30], strict=True)] == [30, 30]
    assert main(["sim-dataset", str(tmp_path / "bad"), "--settle-ticks", "-1"]) == 2
    assert "--settle-ticks" in capsys.readouterr().err
