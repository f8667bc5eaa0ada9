"""The training-text assets (docs/text-sources.md): which Debian package and files each one is."""

from __future__ import annotations

from slamkit.assets import ASSETS, DebAsset
from slamkit.prepare.text import TEXT_SOURCES


def test_text_assets_are_debian_packages_with_their_files() -> None:
    expected = {"wordnet": ("wordnet-base", "usr/share/wordnet/data.noun"),
                "austen-novels": ("r-cran-janeaustenr", "usr/lib/R/site-library/janeaustenr/data/Rdata.rdb"),
                "moby-dick": ("r-cran-tokenizers", "usr/lib/R/site-library/tokenizers/data/Rdata.rdb"),
                "jargon-file": ("jargon-text", "usr/share/doc/jargon-text/jargon.txt.gz")}
    for name, (package, path) in expected.items():
        asset = ASSETS.get(name)
        assert isinstance(asset, DebAsset) and asset.packages == (package,) and path in asset.files
        assert asset.licence and "slamkit assets install " + name in asset.install_hint()


def test_every_text_source_names_a_registered_asset() -> None:
    for name in TEXT_SOURCES.names():
        assert TEXT_SOURCES.get(name).asset in ASSETS, name
