"""Mutants of the researcher-facing layer of common/ and spectra's command line: report cells, figure modes,
provenance vs resume, TensorBoard purging, results tables, runtimes, --help comments, spectra-denoise's flags."""

from tests.mutants.spec import Mutant

C = "tests/common/"
S = "tests/spectra/"

MUTANTS = [
    Mutant(
        file="common/reproduce.py",
        old='return " ".join(_fmt(v).split()).replace("|", "\\\\|")',
        new='return " ".join(_fmt(v).split())',
        tests=(C + "test_metrics_plotting_reproduce.py::test_report_escapes_pipes_and_marks_smoke",),
        why="REPORT.md cells not escaped: a quantity named 'max |a - b|' splits its row and loses pass/FAIL",
    ),
    Mutant(
        file="common/plotting.py",
        old="os.chmod(tmp, 0o666 & ~metrics.umask())",
        new="os.chmod(tmp, 0o600)",
        tests=(C + "test_metrics_plotting_reproduce.py::test_figures_get_the_umask_mode_not_mkstemps_0600",),
        why="figures keep mkstemp's 0600: collaborators cannot open them",
    ),
    Mutant(
        file="common/app.py",
        old='if prefix == "" and (k == "overwrite" or k in _META_KEYS):',
        new='if prefix == "" and k == "overwrite":',
        tests=(C + "test_cli_ux.py::test_provenance_in_config_and_results_and_a_clean_log",),
        why="provenance compared as config: the same command is refused as a different config",
    ),
    Mutant(
        file="common/metrics.py",
        old="self._tb_purge[run_prefix] = int(step) + 1",
        new="self._tb_purge[run_prefix] = int(step)",
        tests=(C + "test_metrics_plotting_reproduce.py::test_metric_writer_writes_tensorboard_events_per_run",),
        why="TensorBoard purge off by one: the restored step's own event is hidden",
    ),
    Mutant(
        file="common/results.py",
        old='_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}',
        new='_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": math.inf}',
        tests=(C + "test_results.py::test_load_gives_tables_with_the_union_of_columns_and_numbers_back",),
        why="'-inf' read back as +inf",
    ),
    Mutant(
        file="common/reproduce.py",
        old="minutes = f\"{entry['wall_seconds'] / 60:.1f} min\"",
        new="minutes = f\"{entry['wall_seconds'] / 60:.0f} min\"",
        tests=(C + "test_runtimes.py::test_readme_table_takes_its_runtimes_from_the_file",),
        why="runtime cell rounded to whole minutes: the README no longer states the file's number",
    ),
    Mutant(
        file="common/config_help.py",
        old="            if comment and not fields.get(key):",
        new="            if comment:",
        tests=(C + "test_cli_ux.py::test_config_comments_reads_inline_and_block_comments_in_file_order",),
        why="--help shows a variant's comment instead of the field's own",
    ),
    Mutant(
        file="spectra/cli.py",
        old="    if k < 1:",
        new="    if k < 0:",
        tests=(S + "test_cli_ux.py::test_rank_below_one_is_refused_and_a_too_large_rank_names_rank",),
        why="--rank 0 accepted: an all-zero estimate is written",
    ),
    Mutant(
        file="spectra/cli.py",
        old='delimiter = "," if ext == ".csv" else " "',
        new='delimiter = " "',
        tests=(S + "test_cli_ux.py::test_csv_output_is_csv_and_unknown_formats_are_refused",),
        why="a .csv output written space-separated",
    ),
]
