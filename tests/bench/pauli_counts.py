#!/usr/bin/python3
"""Simulated Pauli-tomography counts for n qubits, in qtomo's pauli design order, as a CSV.

Rows are outcomes a = s * 2^n + o (setting s = sum_k s_k 3^(n-1-k) over X=0, Y=1, Z=2; outcome
bits o with qubit 0 most significant, bit 0 the +1 eigenstate), columns are samples. Each sample
is a random state of the given rank (Ginibre, as qtomo-bench's qt_rng_state draws them) measured
with SHOTS counts per setting. Needs numpy (Debian: python3-numpy); used by bench_qubits.py.

usage: pauli_counts.py N_QUBITS RANK SAMPLES SEED OUT.csv [SHOTS [TARGET.json]]
With TARGET.json and RANK 1, the first sample's state is written there as a qtomoctl target
(--target), so records carry the fidelity of each estimate to the true state.
"""
import json
import sys

import numpy as np

# Rows of U_s: <e_o| for the +1 (o = 0) and -1 (o = 1) eigenvectors of X, Y, Z.
S2 = 1 / np.sqrt(2)
BASES = np.array([
    [[S2, S2], [S2, -S2]],                 # X
    [[S2, -1j * S2], [S2, 1j * S2]],       # Y: conj of (1, i)/sqrt2 and (1, -i)/sqrt2
    [[1, 0], [0, 1]],                      # Z
], dtype=complex)


def probabilities(n, g):
    """p[s, o] = <e_{s,o}| rho |e_{s,o}> for rho = g g^H (g: 2^n x r, unit Frobenius norm),
    qubit by qubit on the density matrix, so that memory stays at 6^n whatever the rank."""
    d = 2 ** n
    rho = g @ g.conj().T
    t = rho.reshape((2,) * (2 * n))
    t = np.transpose(t, [k for q in range(n) for k in (q, n + q)])  # i0 j0 i1 j1 ...
    m6 = np.einsum("soi,soj->soij", BASES, BASES.conj()).reshape(6, 2, 2)
    for q in range(n):  # axes (i_q, j_q) at q, q + 1 become one axis (s_q, o_q) at q
        t = np.moveaxis(np.tensordot(m6, t, axes=([1, 2], [q, q + 1])), 0, q)
    p = t.real.reshape((3, 2) * n)
    order = [2 * q for q in range(n)] + [2 * q + 1 for q in range(n)]
    return np.transpose(p, order).reshape(3 ** n, d)


def main():
    n, rank, samples, seed, out = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                                   int(sys.argv[4]), sys.argv[5])
    shots = int(sys.argv[6]) if len(sys.argv) > 6 else 1000
    rng = np.random.default_rng(seed)
    d = 2 ** n
    cols = []
    for i in range(samples):
        g = rng.normal(size=(d, rank)) + 1j * rng.normal(size=(d, rank))
        g /= np.sqrt(np.sum(np.abs(g) ** 2))  # rho = g g^H / Tr
        if i == 0 and rank == 1 and len(sys.argv) > 7:
            with open(sys.argv[7], "w") as f:
                json.dump({"ket": {"re": g[:, 0].real.tolist(), "im": g[:, 0].imag.tolist()}}, f)
        p = probabilities(n, g)
        p = np.clip(p / p.sum(axis=1, keepdims=True), 0, None)
        p /= p.sum(axis=1, keepdims=True)
        cols.append(rng.multinomial(shots, p).reshape(-1))
    np.savetxt(out, np.stack(cols, axis=1), fmt="%d", delimiter=",")


if __name__ == "__main__":
    main()
