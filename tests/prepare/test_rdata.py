"""Reading R packages' data sets without R (slamkit.prepare.rdata), on databases written like R's."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from fake_rdata import HEADER, serialize, write_lazyload

from slamkit.assets import AssetMissingError, asset_path
from slamkit.prepare.rdata import (
    RDataError,
    lazyload_index,
    read_character_vector,
    read_lazyload,
    unserialize,
)


def test_unserialize_values() -> None:
    assert unserialize(serialize(["a", None, "ünï"])) == ["a", None, "ünï"]
    assert unserialize(serialize(("latin1", "café"))) == ["café"]
    assert unserialize(serialize([3, -1])) == [3, -1]
    assert unserialize(serialize(True)) == [1]
    assert unserialize(serialize(None)) is None
    nested = {"x": {"y": ["z"]}, "w": [1, 2]}  # the second `names` symbol is a reference
    assert unserialize(serialize(nested)) == nested


@pytest.mark.parametrize("compression", [1, 2, 3])
def test_lazyload_round_trip(tmp_path: Path, compression: int) -> None:
    books = {"emma": ["EMMA", "", "Emma Woodhouse, handsome, clever, and rich."], "short": ["one line"]}
    folder = write_lazyload(tmp_path / "data", books, compression)
    index, found = lazyload_index(folder)
    assert list(index) == ["emma", "short"] and found == compression
    assert read_lazyload(folder) == books
    assert read_character_vector(folder, "short") == ["one line"]


def test_errors_name_the_file_and_the_problem(tmp_path: Path) -> None:
    with pytest.raises(RDataError, match="Rdata.rdx.*Rdata.rdb"):
        read_lazyload(tmp_path / "nothing")
    folder = write_lazyload(tmp_path / "data", {"emma": ["x"], "n": [1, 2]})
    with pytest.raises(RDataError, match=r"no variable \['persuasion'\] \(it has emma, n\)"):
        read_lazyload(folder, ["persuasion"])
    with pytest.raises(RDataError, match="'n' is not a character vector"):
        read_character_vector(folder, "n")
    data = (folder / "Rdata.rdb").read_bytes()
    (folder / "Rdata.rdb").write_bytes(data[:10])
    with pytest.raises(RDataError, match=r"Rdata.rdb\[emma\]"):
        read_lazyload(folder)
    with pytest.raises(RDataError, match="not R's XDR"):
        unserialize(b"A\n1\n")
    closure = HEADER + struct.pack(">i", 3)
    with pytest.raises(RDataError, match="R type 3 \\(closure\\) is not supported"):
        unserialize(closure)
    with pytest.raises(RDataError, match="truncated"):
        unserialize(serialize(["abc"])[:-2])
    (folder / "Rdata.rdb").write_bytes(struct.pack(">i", 3) + b"not zlib" + data[12:])
    with pytest.raises(RDataError, match="cannot decompress"):
        read_lazyload(folder, ["emma"])


def _installed(name: str) -> Path:
    try:
        return asset_path(name)
    except AssetMissingError as err:
        pytest.skip(f"asset not installed: {err}")


def test_real_janeaustenr_and_tokenizers() -> None:
    folder = _installed("austen-novels") / "usr/lib/R/site-library/janeaustenr/data"
    books = read_lazyload(folder)
    assert {name: len(lines) for name, lines in books.items()} == {
        "emma": 16235, "mansfieldpark": 15349, "northangerabbey": 7856, "persuasion": 8328,
        "prideprejudice": 13030, "sensesensibility": 12624}
    assert books["prideprejudice"][0] == "PRIDE AND PREJUDICE"
    moby = read_character_vector(_installed("moby-dick") / "usr/lib/R/site-library/tokenizers/data", "mobydick")
    assert len(moby) == 1 and "Call me Ishmael." in moby[0]
