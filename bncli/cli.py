"""The ``bncli`` command line: parse options, call the library, map errors to exit codes.

Heavy modules (numpy, pyarrow, pandas, rich) are imported inside the command
bodies so that ``bncli --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from . import __version__, files, options
from .errors import EXIT_BROKEN_PIPE, EXIT_FAILURE, EXIT_INTERRUPTED, BncliError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _PipeClosed(Exception):
    """stdout's reader went away.  Not an OSError, so that click does not handle it first."""


class BncliGroup(click.Group):
    """A click group whose ``main`` turns every failure into one stderr line and an exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise _PipeClosed() from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv[: argv.index("--")] if "--" in argv else "--debug" in argv
        debug = debug or bool(os.environ.get("BNCLI_DEBUG"))
        try:
            rv = super().main(argv, prog_name or "bncli", complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except (click.Abort, KeyboardInterrupt):
            _echo_err("Aborted: interrupted; no output file was written.")
            sys.exit(EXIT_INTERRUPTED)
        except (BrokenPipeError, _PipeClosed):
            _silence_stdout()
            sys.exit(EXIT_BROKEN_PIPE)
        except BncliError as e:
            if debug:
                traceback.print_exc()
            _echo_err(f"Error: {e.format()}")
            sys.exit(e.exit_code)
        except Exception as e:  # a bug: say so briefly, with a way to see more
            if debug:
                traceback.print_exc()
            _echo_err(
                f"Error: internal error: {type(e).__name__}: {e} "
                "(hint: rerun with --debug for the traceback, and please report it)"
            )
            sys.exit(EXIT_FAILURE)
        sys.exit(rv if isinstance(rv, int) else 0)


def _echo_err(line: str) -> None:
    try:
        click.echo(line, err=True)
    except OSError:
        pass


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _usage(message: str) -> click.UsageError:
    return click.UsageError(message)


@click.group(
    cls=BncliGroup,
    context_settings=CONTEXT_SETTINGS,
    epilog="""\b
Examples:
  bncli fit train.csv -s stats.json -o train.norm.csv
  bncli transform test.parquet -s stats.json -o test.norm.parquet
  cat train.csv | bncli fit - -s stats.json | gzip > train.norm.csv.gz
  bncli inspect stats.json --data train.csv

Run 'bncli COMMAND --help' for a command's options.""",
)
@click.version_option(__version__, "-V", "--version", prog_name="bncli")
def cli():
    """Batch-normalize tables (CSV, TSV, Parquet) as torch.nn.BatchNorm1d does.

    'fit' normalizes each mini-batch with its own statistics (training mode) and
    saves running and exact whole-data statistics; 'transform' applies saved
    statistics to new data (inference mode), or undoes them.
    """


def _reporter(verbose: int, quiet: int, progress):
    from .report import Reporter

    return Reporter(verbose - quiet, progress)


def _io(input_format, output_format, delimiter, encoding, null_value, inf_policy, precision):
    from .pipeline import IOOptions

    return IOOptions(
        input_format=input_format,
        output_format=output_format,
        delimiter=delimiter,
        encoding=encoding,
        null_values=tuple(null_value),
        precision=precision,
        inf=inf_policy,
    )


@cli.command(
    short_help="Normalize in training mode; save the statistics.",
    context_settings=CONTEXT_SETTINGS,
    epilog="""\b
Examples:
  bncli fit sample_data/california_housing.csv -s stats.json -o housing.norm.csv
  bncli fit data.parquet -s stats.json -o /dev/null          # statistics only
  bncli fit data.csv -s stats.json -b 128 --momentum 0.1 -C id,zip
  cat data.csv | bncli fit - -s stats.json | gzip > data.norm.csv.gz
  bncli fit day2.csv -s all.json --resume day1.json          # continue a fit""",
)
@options.inputs
@options.stats_out
@options.output
@options.columns
@options.exclude
@options.fit_batch_size
@options.momentum
@options.eps
@options.drop_last
@click.option("--resume", "resume_path", metavar="OLD.json", help="Continue from an earlier stats file.")
@options.engine
@options.scheduler
@options.io_options
def fit(inputs, stats_path, output, columns, exclude, batch_size, momentum, eps, drop_last, resume_path,
        engine, scheduler,
        input_format, output_format, delimiter, encoding, null_value, inf_policy, precision,
        verbose, quiet, progress, debug):  # fmt: skip
    """Batch-normalize INPUT in training mode and save its statistics.

    Rows are cut into mini-batches of --batch-size consecutive rows; every
    numeric column of each batch is normalized with that batch's mean and
    biased variance, y = (x - mean_B) / sqrt(var_B + eps), ignoring missing
    values.  Running statistics (PyTorch BatchNorm1d) and exact whole-data
    statistics go to the --stats file.  INPUT omitted or '-' reads stdin;
    several INPUTs are read as one stream, in the order given.
    """
    from . import pipeline
    from .stats import Params, load_stats

    reporter = _reporter(verbose, quiet, progress)
    params = Params(batch_size=batch_size, momentum=momentum, eps=eps, drop_last=drop_last)
    resume = None
    if resume_path:
        resume = load_stats(resume_path)
        params = _resume_params(resume, params, reporter)
    run = pipeline.fit
    extra = {}
    if engine == "dask":
        from . import dask_engine

        run, extra = dask_engine.fit, {"scheduler": scheduler}
    _, summary = run(
        list(inputs),
        stats_path,
        output,
        columns=columns,
        exclude=exclude,
        params=params,
        io=_io(input_format, output_format, delimiter, encoding, null_value, inf_policy, precision),
        resume=resume,
        reporter=reporter,
        **extra,
    )
    reporter.summary(summary.line("fit:"))


def _resume_params(resume, params, reporter):
    """Momentum and batch size come from the resumed file unless given on the command line."""
    ctx = click.get_current_context()
    given = lambda name: ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE  # noqa: E731
    old = resume.params
    for name in ("momentum", "batch_size"):
        if given(name) and getattr(params, name) != getattr(old, name):
            reporter.warn(
                f"--resume: overriding {name} {getattr(old, name)!r} from the stats file with {getattr(params, name)!r}"
            )
        elif not given(name):
            setattr(params, name, getattr(old, name))
    if not given("eps"):
        params.eps = old.eps
    return params


@cli.command(
    short_help="Apply saved statistics (inference mode), or undo them.",
    context_settings=CONTEXT_SETTINGS,
    epilog="""\b
Examples:
  bncli transform test.csv -s stats.json -o test.norm.csv
  bncli transform test.csv -s stats.json --use global > test.norm.csv
  bncli transform test.norm.csv -s stats.json --inverse -o test.restored.csv
  zcat big.csv.gz | bncli transform - -s stats.json | head
  bncli transform 'days/*.csv' -s stats.json --output-dir normalized/""",
)
@options.inputs
@options.stats_in
@options.output
@options.use
@options.inverse
@options.transform_batch_size
@click.option("--output-dir", metavar="DIR", help="One output per input in DIR, under the input's own (relative) name.")
@options.engine
@options.scheduler
@options.io_options
def transform(inputs, stats_path, output, use, inverse, batch_size, output_dir, engine, scheduler,
              input_format, output_format, delimiter, encoding, null_value, inf_policy, precision,
              verbose, quiet, progress, debug):  # fmt: skip
    """Normalize INPUT with saved statistics (inference mode), or undo it.

    y = weight * (x - mean) / sqrt(var + eps) + bias per feature, with the
    running statistics (as torch.nn.BatchNorm1d in eval mode) or, with --use
    global, the exact mean and sample variance.  Columns not in the stats file
    pass through unchanged; missing values stay missing.
    """
    from . import pipeline
    from .stats import load_stats

    reporter = _reporter(verbose, quiet, progress)
    stats = load_stats(stats_path)
    run = pipeline.transform
    extra = {"output_dir": output_dir}
    if engine == "dask":
        from . import dask_engine

        if output_dir:
            raise click.UsageError("--output-dir works with the local engine; with --engine dask use -o DIR/")
        run, extra = dask_engine.transform, {"scheduler": scheduler}
    summary = run(
        list(inputs),
        stats,
        output,
        use=use,
        inverse=inverse,
        batch_size=batch_size,
        io=_io(input_format, output_format, delimiter, encoding, null_value, inf_policy, precision),
        reporter=reporter,
        stats_path=stats_path,
        **extra,
    )
    reporter.summary(summary.line("inverse-transform:" if inverse else "transform:"))


@cli.command(
    short_help="Show a stats file; with --data, before/after histograms.",
    context_settings=CONTEXT_SETTINGS,
    epilog="""\b
Examples:
  bncli inspect stats.json
  bncli inspect stats.json --data sample_data/california_housing.csv
  bncli inspect stats.json --json | jq '.features[0]'
  bncli inspect stats.json --data train.csv --html report.html""",
)
@click.argument("stats_path", metavar="STATS.json")
@click.option(
    "--data",
    "data_path",
    metavar="FILE",
    help="Also read FILE and draw each feature's histogram before and after transform.",
)
@options.use
@click.option(
    "--bins", type=click.IntRange(2, 200), default=30, show_default=True, help="Histogram bins (with --data)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the same information as JSON on stdout, for scripts.")
@click.option(
    "--html",
    "html_path",
    metavar="FILE.html",
    help="Also write the before/after histograms as a self-contained HTML page.",
)
@options.input_format
@options.delimiter
@options.encoding
@options.null_value
@options.inf
@options.verbose
@options.quiet
@options.progress
@options.debug
def inspect(stats_path, data_path, use, bins, as_json, html_path, input_format, delimiter, encoding, null_value,
            inf_policy, verbose, quiet, progress, debug):  # fmt: skip
    """Show a stats file as a table, and with --data the raw and normalized distributions.

    Lists each feature's count, missing values, mean, std, min, max, running
    mean and std, batches tracked and warnings, under the fit parameters and
    provenance.  Feature names are never truncated.
    """
    from . import inspect as inspect_lib

    inspect_lib.run(
        stats_path,
        data=data_path,
        use=use,
        bins=bins,
        as_json=as_json,
        html=html_path,
        io=_io(input_format, None, delimiter, encoding, null_value, inf_policy, None),
        reporter=_reporter(verbose, quiet, progress),
    )


@cli.command(
    short_help="Combine stats files of separately fitted shards.",
    context_settings=CONTEXT_SETTINGS,
    epilog="""\b
Examples:
  bncli fit part1.csv -s s1.json -o /dev/null
  bncli fit part2.csv -s s2.json -o /dev/null
  bncli merge s1.json s2.json -o all.json      # = one fit over part1 then part2
  bncli transform new.csv -s all.json --use global""",
)
@click.argument("stats_paths", nargs=-1, required=True, metavar="STATS.json...")
@click.option("-o", "--output", "output", required=True, metavar="OUT.json", help="Merged stats file to write.")
@options.verbose
@options.quiet
@options.debug
def merge(stats_paths, output, verbose, quiet, debug):
    """Combine stats files of shards fitted separately into one.

    Whole-data statistics merge exactly (Chan et al.).  Running statistics
    become those of one fit over the shards in the order given; that is exact
    when every shard but the last filled whole batches (its row count is a
    multiple of the batch size).  Features, eps, momentum and batch size must
    agree.
    """
    from . import files
    from .stats import load_stats, merge_stats

    files.check_clobber(list(stats_paths), output=output)
    merged = merge_stats([load_stats(p) for p in stats_paths], list(stats_paths))
    out = files.AtomicFile(output, what="stats file")
    try:
        out.write(merged.to_json().encode("utf-8"))
        out.commit()
    finally:
        out.discard()
    _reporter(verbose, quiet, None).summary(
        f"merge: {len(stats_paths)} stats files, {int(merged.state.count.max(initial=0)):,} values per feature at most"
    )


def _end_on_signals() -> None:
    """On Ctrl-C or SIGTERM: delete temporary outputs, say so, and end the process at once.

    Unwinding with KeyboardInterrupt through reader, math and writer threads can
    land while a queue lock is held and hang; ending directly cannot.  Outputs
    are atomic, so nothing partial is left either way.
    """
    import signal

    def handler(signum, frame):
        files.remove_temporary_files()
        try:
            os.write(2, b"Aborted: interrupted; no output file was written.\n")
        except OSError:
            pass
        os._exit(128 + signum)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def main() -> None:
    """Console-script entry point."""
    _end_on_signals()
    # Let pyarrow's allocator (mimalloc) hand freed chunks back to the OS after
    # 50 ms: a streaming run frees as much as it allocates, and peak memory is
    # what a long run on a small machine runs out of.  Measured on the benchmark:
    # the same peak as 0 ms, with a third fewer page faults.
    os.environ.setdefault("MIMALLOC_PURGE_DELAY", "50")
    # bncli does no linear algebra; idle BLAS worker threads would only spin.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    cli.main(prog_name="bncli")


if __name__ == "__main__":  # pragma: no cover
    main()
