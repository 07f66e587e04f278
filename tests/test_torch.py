"""fit and transform against torch.nn.BatchNorm1d itself, in float64.

torch is a test-only dependency (pinned in the `test` extra).  It is pinned to
one thread: its CPU kernel's float64 sums depend on the thread count.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")

from bncli import pipeline  # noqa: E402
from bncli.report import Reporter  # noqa: E402
from bncli.stats import Params, load_stats  # noqa: E402

from reference import batch_bounds, output_tolerance  # noqa: E402

torch.set_num_threads(1)


def torch_train(x: np.ndarray, batch_size: int, momentum, eps: float):
    """Feed the batches bncli defines (a one-row tail merged) to BatchNorm1d in training mode."""
    bn = torch.nn.BatchNorm1d(x.shape[1], eps=eps, momentum=momentum, dtype=torch.float64)
    bn.train()
    outs = [bn(torch.from_numpy(x[a:b])).detach().numpy() for a, b, _ in batch_bounds(len(x), batch_size, False)]
    return bn, np.vstack(outs)


def load_bn(stats: dict):
    p = stats["params"]
    bn = torch.nn.BatchNorm1d(stats["num_features"], eps=p["eps"], momentum=p["momentum"], dtype=torch.float64)
    state = {
        k: torch.tensor(v, dtype=torch.long if k == "num_batches_tracked" else torch.float64)
        for k, v in stats["state_dict"].items()
    }
    bn.load_state_dict(state, strict=True)
    return bn.eval()


@pytest.fixture
def data():
    rng = np.random.default_rng(42)
    x = rng.normal(size=(1000, 4)) * [1.0, 0.01, 300.0, 2.0] + [0.0, 1e6, -50.0, 7.0]
    names = ["a", "b", "c", "d"]
    return x, names


def write(path, x, names):
    table = pa.table({n: x[:, j] for j, n in enumerate(names)} | {"id": [f"row{i}" for i in range(len(x))]})
    if str(path).endswith(".parquet"):
        pq.write_table(table, path)
    else:
        import pyarrow.csv as pacsv

        # Python repr round-trips exactly; pyarrow's CSV writer would quote the id column.
        with open(path, "w") as fh:
            fh.write(",".join(names + ["id"]) + "\n")
            for i, row in enumerate(x):
                fh.write(",".join(repr(float(v)) for v in row) + f",row{i}\n")
        del pacsv


def read_features(path, names):
    if str(path).endswith(".parquet"):
        t = pq.read_table(path)
    else:
        import pyarrow.csv as pacsv

        t = pacsv.read_csv(path)
    return np.column_stack([t.column(n).to_numpy() for n in names])


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("momentum", [None, 0.1])
@pytest.mark.parametrize("batch_size", [64, 100, 333, 999])
def test_fit_and_transform_match_torch(tmp_path, data, fmt, momentum, batch_size):
    x, names = data
    src = tmp_path / f"in.{fmt}"
    write(src, x, names)
    out = tmp_path / f"out.{fmt}"
    stats_path = tmp_path / "stats.json"
    pipeline.fit([str(src)], str(stats_path), str(out), params=Params(batch_size=batch_size, momentum=momentum),
                 reporter=Reporter(-1))  # fmt: skip
    bn, y_torch = torch_train(x, batch_size, momentum, 1e-5)
    stats = json.loads(stats_path.read_text())
    sd = stats["state_dict"]
    np.testing.assert_allclose(sd["running_mean"], bn.running_mean.numpy(), rtol=1e-9)
    np.testing.assert_allclose(sd["running_var"], bn.running_var.numpy(), rtol=1e-9)
    assert sd["num_batches_tracked"] == int(bn.num_batches_tracked)
    y = read_features(out, names)
    assert (np.abs(y - y_torch) <= output_tolerance(x, batch_size)).all()

    # Inference: the saved state_dict loads strictly into BatchNorm1d and gives transform's output.
    bn_eval = load_bn(stats)
    t_out = tmp_path / f"t.{fmt}"
    pipeline.transform([str(src)], load_stats(str(stats_path)), str(t_out), reporter=Reporter(-1))
    want = bn_eval(torch.from_numpy(x)).detach().numpy()
    # torch evaluates x * alpha + beta, exact only to eps64 * |mean| / std.
    assert (np.abs(read_features(t_out, names) - want) <= output_tolerance(x, len(x))).all()


def test_global_statistics_equal_one_whole_table_batch(tmp_path, data):
    """--use global is BatchNorm1d trained on the whole table as one batch (momentum 1), in eval mode."""
    x, names = data
    src = tmp_path / "in.csv"
    write(src, x, names)
    stats_path = tmp_path / "s.json"
    pipeline.fit([str(src)], str(stats_path), "/dev/null", params=Params(batch_size=37), reporter=Reporter(-1))
    bn = torch.nn.BatchNorm1d(4, momentum=1.0, dtype=torch.float64)
    bn(torch.from_numpy(x))
    bn.eval()
    out = tmp_path / "g.csv"
    pipeline.transform([str(src)], load_stats(str(stats_path)), str(out), use="global", reporter=Reporter(-1))
    want = bn(torch.from_numpy(x)).detach().numpy()
    assert (np.abs(read_features(out, names) - want) <= output_tolerance(x, len(x))).all()
