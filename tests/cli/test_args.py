"""Command-line arguments before Hydra reads them: paths and free text quoted, so that any file name works."""

from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from ftcli.cli.args import quote_free_text
from ftcli.config.validate import explain


def _parsed(arg: str) -> object:
    """The value Hydra's override parser reads from ``arg``."""
    return OverridesParser.create().parse_overrides([arg])[0].value()


@pytest.mark.parametrize(
    "path",
    ["/data/café", "/data/photos_été/x.csv", "/data/a, b", "/data/it's", "~/data", "/data/x [1]", "C:\\data\\"],
)
@pytest.mark.parametrize("key", ["dataset.data_dir", "dataset.train_file", "input", "hydra.run.dir", "checkpoint"])
def test_every_path_valued_key_reaches_hydra_as_written(key: str, path: str) -> None:
    assert _parsed(quote_free_text(f"{key}={path}")) == path


@pytest.mark.parametrize("arg", ["dataset.data_dir=/data/plain-1.0", "hydra.run.dir=outputs/${now:%H-%M-%S}"])
def test_what_hydra_reads_as_it_is_stays_as_it_is(arg: str) -> None:
    assert quote_free_text(arg) == arg


def test_under_a_sweep_a_comma_separates_paths_each_quoted_on_its_own() -> None:
    arg = quote_free_text("dataset.train_file=/d/café.csv,/d/plain.csv", multirun=True)
    assert arg == "dataset.train_file='/d/café.csv',/d/plain.csv"
    sweep = OverridesParser.create().parse_overrides([arg])[0]
    jobs = [_parsed(f"dataset.train_file={value}") for value in sweep.sweep_string_iterator()]  # what each job gets
    assert jobs == ["/d/café.csv", "/d/plain.csv"]
    assert quote_free_text("dataset.train_file=glob(*.csv)", multirun=True) == "dataset.train_file=glob(*.csv)"


def test_any_other_key_hydra_cannot_read_says_how_to_quote_it() -> None:
    with pytest.raises(Exception) as caught:
        OverridesParser.create().parse_overrides(["dataset.image_column=imagé"])
    assert explain(caught.value) == (
        "dataset.image_column=imagé: Hydra cannot read this value unquoted; quote it: \"dataset.image_column='imagé'\""
    )
