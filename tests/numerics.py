"""Tolerances for two computations of the same function that differ only in how they round.

A fixed absolute tolerance on a model's outputs holds on the machine it was tried on and
not on the next: float32 rounding grows with the reductions (hidden size, MLP width,
sequence length) and the depth, and CPUs sum in different orders (AVX2, AVX-512, oneDNN
blocking). On one AMD CPU the merged-adapter test found 1.05e-4 against an allowed 1e-4.

The yardstick here is the float32 error of the computation itself: the same function in
float64 is exact for this purpose (its rounding is 2**29 times finer), so the reference
float32 computation's distance from it is what float32 costs on this input, this model
and this machine. The computation under test must be about as close to the exact value;
measured on the tiny model (2 layers, 23 to 2,651 tokens, three random adapters) its
error was 0.65-1.4 times the reference's, so SLACK = 4 leaves room while a real fault
(an adapter merged at the wrong scale, a cache entry at the wrong position) is off by
orders of magnitude more.
"""

from __future__ import annotations

SLACK = 4.0


def assert_as_close_as_float32_allows(actual, reference, exact, slack: float = SLACK, what: str = "output") -> None:
    """``actual`` is within ``slack`` times ``reference``'s own float32 error of ``exact`` (float64)."""
    import torch

    exact = exact.double()
    eps, scale = torch.finfo(reference.dtype).eps, exact.abs().max().item()
    noise = (reference.double() - exact).abs().max().item()
    # A reference further off than sqrt(eps) (half its digits) is not rounding: the float64 computation is not the
    # same function (misaligned positions, another adapter), and would make any error look allowed.
    assert noise <= eps**0.5 * scale, (
        f"{what}: the reference is {noise:.3e} from the float64 value (largest |value| {scale:.3g}): not the same function")
    error = (actual.double() - exact).abs().max().item()
    # Never below one float32 ulp of the largest value, so that an exact reference does not demand exactness.
    allowed = slack * max(noise, eps * scale)
    assert error <= allowed, (f"{what}: largest difference from the float64 value {error:.3e}, allowed {allowed:.3e} "
                              f"({slack:g} x the reference's own float32 error {noise:.3e})")


def summation_rtol(dtype, n_terms: int) -> float:
    """Relative tolerance for two float sums of the same ``n_terms`` non-negative terms in different orders.

    Recursive summation errs by at most (n - 1) * u relative to the sum of |terms|
    (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 4.4), u = eps / 2;
    with both sums off by that much in opposite directions, 2 (n - 1) u = (n - 1) eps.
    """
    import torch

    return max(n_terms - 1, 1) * torch.finfo(dtype).eps
