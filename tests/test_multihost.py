"""Several hosts: two processes joined by `jax.distributed` share the cells of one simulation.

Two Python processes on localhost (one CPU device each) call `jax.distributed.initialize` and then
the same `grn.simulate`; the cells are sharded over both processes' devices and every process
gets the whole result, bit-identical to one process with the same key.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import grn

ROOT = Path(__file__).resolve().parents[1]
TS = jnp.linspace(0.0, 20.0, 11)
N_CELLS = 9  # odd: the last device's shard is padded
KEY = 11
SOLVERS = {"ssa": grn.SSA(), "cle": grn.CLE(dt=0.05)}

_WORKER = textwrap.dedent(
    """
    import json, sys
    import jax
    process_id, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                               process_id=process_id, initialization_timeout=60)
    import jax.numpy as jnp, numpy as np, grn
    ts = jnp.linspace(0.0, 20.0, 11)
    net = grn.models.immigration_death()
    arrays, spans = {}, []
    for name, solver in {"ssa": grn.SSA(), "cle": grn.CLE(dt=0.05)}.items():
        sol = grn.simulate(net, ts, key=jax.random.key(11), solver=solver, n_cells=9)
        spans.append(len(sol.ys.sharding.device_set))
        arrays.update({f"{name}_ys": sol.ys, f"{name}_result": sol.result,
                       f"{name}_n_events": sol.n_events})
    st = grn.simulate(net, ts, key=jax.random.key(11), n_cells=9, reduce="moments")
    arrays.update(moments_mean=st.mean, moments_std=st.std, moments_count=st.count)
    np.savez(out, **{k: np.asarray(v) for k, v in arrays.items()})
    print(json.dumps({"processes": jax.process_count(), "devices": jax.device_count(),
                      "local_devices": jax.local_device_count(), "spans": spans}))
    jax.distributed.shutdown()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_give_the_single_process_result(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_ENABLE_X64")}
    env.update(
        JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    )
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(i), str(port), str(tmp_path / f"p{i}.npz")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=180)
            assert proc.returncode == 0, stderr[-3000:]
            outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for info in outputs:
        # Two processes with one device each, and each result computed over both devices.
        assert info == {"processes": 2, "devices": 2, "local_devices": 1, "spans": [2, 2]}

    net = grn.models.immigration_death()
    one = {
        name: grn.simulate(net, TS, key=jax.random.key(KEY), solver=solver, n_cells=N_CELLS)
        for name, solver in SOLVERS.items()
    }
    for i in range(2):
        got = np.load(tmp_path / f"p{i}.npz")
        for name in SOLVERS:
            assert got[f"{name}_ys"].shape == (N_CELLS, len(TS), 1)
            np.testing.assert_array_equal(got[f"{name}_ys"], one[name].ys)
            np.testing.assert_array_equal(got[f"{name}_result"], one[name].result)
            np.testing.assert_array_equal(got[f"{name}_n_events"], one[name].n_events)
        # Streamed statistics: per-device parts merged in device order, so equal up to rounding.
        assert int(got["moments_count"]) == N_CELLS
        np.testing.assert_allclose(got["moments_mean"], one["ssa"].mean, rtol=1e-6)
        np.testing.assert_allclose(got["moments_std"], one["ssa"].std, rtol=1e-5, atol=1e-6)
