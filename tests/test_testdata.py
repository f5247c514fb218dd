"""The test data shipped in tests/data: complete, within its size budget, and guarded under CI."""

import pytest
from _data import DATA, data_file


def test_missing_data_skips_and_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-file"):
        data_file("no-such-file")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no-such-file"):
        data_file("no-such-file")
    assert data_file("dsmts/00001/00001-results.csv").is_file()


def test_dsmts_cases_are_complete_and_the_data_small():
    cases = sorted(p.name for p in (DATA / "dsmts").iterdir() if p.is_dir())
    assert cases == [f"{i:05d}" for i in range(1, 40)]
    for case in cases:
        for name in ("settings.txt", "results.csv", "sbml-l3v2.xml", "sbml-l2v1.xml"):
            assert (DATA / "dsmts" / case / f"{case}-{name}").is_file(), (case, name)
    total = sum(f.stat().st_size for f in DATA.rglob("*") if f.is_file())
    assert total <= 5 * 2**20, f"tests/data holds {total / 2**20:.2f} MiB, over its 5 MiB budget"
