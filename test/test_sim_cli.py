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
    assert main(["demo", "--layouts", str(f), "--demonstrators", "expert"]) == 0
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
    assert main(["demo", "--urdf", str(bad), "--episodes", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "broken.urdf" in err


def test_bad_layouts_file(tmp_path, capsys):
    f = tmp_path / "l.yaml"
    f.write_text("layouts: [{target: [1, 2]}]\n")
    assert main(["demo", "--layouts", str(f)]) == 2
    err = capsys.readouterr().err
    assert "l.yaml" in err and "layouts[0].target" in err
