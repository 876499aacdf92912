"""numba.cuda twins of the tree-verification hot path; same contracts as
:mod:`refseq.tree_verify`, which calls them after validation with int32 arrays (and the output
path width ``D_max + 1``). Host wrappers here copy the arrays to the device, launch the kernels
of :mod:`refseq.cuda.tree_verify.kernels` and copy the results back; the stochastic kernel's
decomposition is mirrored in NumPy by :mod:`refseq.cuda.tree_verify.mirror`.
"""

from __future__ import annotations

import numpy as np

from refseq.cuda.tree_verify.kernels import bind_cuda, kernel_table
from refseq.cuda.tree_verify.mirror import THREADS

# Called only through refseq.tree_verify(backend=...), after its checks: no public surface.
__all__: list[str] = []

_ROW = 128  # block size of the one-thread-per-item kernels


def _grid(n):
    return max(1, -(-n // _ROW))


def tree_masks(parents, num_nodes, n_past):
    """Twin of :func:`refseq.tree_verify.tree_masks`: one thread per (tree, node)."""
    cu = bind_cuda()
    B, N = parents.shape
    d_allow, d_pos = cu.device_array((B, N, N), np.uint8), cu.device_array((B, N), np.int32)
    kernel_table(THREADS)["masks"][_grid(B * N), _ROW](
        cu.to_device(parents), cu.to_device(num_nodes), cu.to_device(n_past), d_allow, d_pos)
    return d_allow.copy_to_host(), d_pos.copy_to_host()


def _outputs(cu, B, width):
    return (cu.to_device(np.full((B, width), -1, np.int32)), cu.device_array(B, np.int32),
            cu.device_array(B, np.int32))


def _host(*xs):
    return tuple(x.copy_to_host() for x in xs)


def tree_verify_greedy(parents, tokens, target_argmax, num_nodes, width):
    """Twin of :func:`refseq.tree_verify.tree_verify_greedy`: one thread per tree."""
    cu = bind_cuda()
    B = parents.shape[0]
    outs = _outputs(cu, B, width)
    kernel_table(THREADS)["greedy"][_grid(B), _ROW](
        *(cu.to_device(x) for x in (parents, tokens, target_argmax, num_nodes)), *outs)
    return _host(*outs)


def tree_verify_greedy_paths(retrieve, retrieve_len, node_token, node_argmax):
    """Twin of :func:`refseq.tree_verify.tree_verify_greedy_paths`: one thread per tree."""
    cu = bind_cuda()
    B, P = retrieve_len.shape
    outs = (cu.device_array((B, P), np.int32), cu.device_array(B, np.int32),
            cu.device_array(B, np.int32))
    kernel_table(THREADS)["paths"][_grid(B), _ROW](
        *(cu.to_device(x) for x in (retrieve, retrieve_len, node_token, node_argmax)), *outs)
    return _host(*outs)


def tree_verify_stochastic(parents, tokens, target, draft, mode, virtual, u_accept, u_final,
                           num_nodes, width, threads=THREADS):
    """Twin of :func:`refseq.tree_verify.tree_verify_stochastic`: one block of ``threads``
    (a power of two) per tree; working arrays P, qm, r (B, V) float64 in global memory."""
    if threads < 1 or threads & (threads - 1):
        raise ValueError(f"threads must be a power of two, got {threads}")
    cu = bind_cuda()
    B, N, V = target.shape
    if draft is None:
        draft = np.zeros((B, N, 1), target.dtype)
    work = tuple(cu.device_array((B, V), np.float64) for _ in range(3))
    outs = _outputs(cu, B, width)
    ins = tuple(cu.to_device(np.ascontiguousarray(x)) for x in (parents, tokens, target, draft))
    rest = tuple(cu.to_device(x) for x in (virtual, u_accept, u_final, num_nodes))
    kernel_table(threads)["stochastic"][B, threads](*ins, np.int32(mode), *rest, *work, *outs)
    return _host(*outs)


def row_status(x, b_idx, i_idx):
    """The after-the-walk row check of the cuda tier: the host arrays' rows that the walk read,
    by the Numba CPU twin (:func:`refseq.jit.tree_verify.row_status`); a few rows, so no device
    round trip."""
    from refseq.jit.tree_verify import row_status as jit_row_status

    return jit_row_status(x, b_idx, i_idx)


def kv_commit(cache, n_past, path, num_accepted, threads=32):
    """Twin of :func:`refseq.tree_verify.kv_commit`: one block per (tree, layer, k/v, head),
    threads over dh; the host ``cache`` is updated in place (copied back)."""
    cu = bind_cuda()
    B, L, _, H = cache.shape[:4]
    d_cache = cu.to_device(cache)
    kernel_table(THREADS)["kv"][B * L * 2 * H, threads](
        d_cache, cu.to_device(n_past), cu.to_device(path), cu.to_device(num_accepted))
    d_cache.copy_to_host(cache)
