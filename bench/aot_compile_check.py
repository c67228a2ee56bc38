"""Compile every decode kernel for an sm_90 GPU on a machine without one (Triton's bundled ptxas),
with programmatic dependent launch on, and check the PTX holds the grid-dependency instructions;
then the sampling kernels between two decode steps (no PDL there), which must compile.

Device time is scarce: a kernel that does not compile for Hopper should fail here, not on the
lent GPU. Needs a Python with torch and triton (CI has no triton), like bench/interp_check.sh:

    PYTHONPATH=<site with triton>:. python bench/aot_compile_check.py
"""
from __future__ import annotations

import sys

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton.runtime.autotuner import Autotuner

from nanovl.ops.activation import kernel as activation
from nanovl.ops.attention import kernel as attention
from nanovl.ops.conv1d import kernel as conv1d
from nanovl.ops.fp8_linear import kernel as fp8_linear
from nanovl.ops.linear import kernel as linear
from nanovl.ops.norm import kernel as norm
from nanovl.ops.sampling import kernel as sampling
from nanovl.ops.ssd import kernel as ssd

BF16, FP32 = "*bf16", "*fp32"
# (kernel, pointer arguments' types, float scalars, constexprs); other arguments are int32
KERNELS = [
    (linear._gemv_fwd_kernel, dict(x=BF16, w=BF16, b=BF16, out=BF16, ws=FP32, xs=FP32, pf="*u8"), set(),
     dict(HAS_BIAS=False, RELU_SQUARE=True, FP8=False, USE_PDL=True, PREFETCH=False, BLOCK_N=8, BLOCK_K=512)),
    # with the L2 prefetch of the next projection's weight (inline PTX the interpreter cannot run)
    (linear._gemv_fwd_kernel, dict(x=BF16, w=BF16, b=BF16, out=BF16, ws=FP32, xs=FP32, pf="*u8"), set(),
     dict(HAS_BIAS=False, RELU_SQUARE=True, FP8=False, USE_PDL=True, PREFETCH=True, BLOCK_N=8, BLOCK_K=512)),
    (linear._skinny_dot_fwd_kernel, dict(x=BF16, w=BF16, b=BF16, out=BF16, ws=FP32, xs=FP32), set(),
     dict(HAS_BIAS=False, RELU_SQUARE=True, IS_FP32=False, FP8=False, USE_PDL=True, BLOCK_M=16, BLOCK_N=16,
          BLOCK_K=512)),
    # an e4m3 weight (FP8 checkpoints), with bf16 and fp32 activations
    (linear._gemv_fwd_kernel, dict(x=BF16, w="*fp8e4nv", b=BF16, out=BF16, ws=FP32, xs=FP32, pf="*u8"), set(),
     dict(HAS_BIAS=True, RELU_SQUARE=True, FP8=True, USE_PDL=True, PREFETCH=False, BLOCK_N=8, BLOCK_K=1024)),
    (linear._skinny_dot_fwd_kernel, dict(x=BF16, w="*fp8e4nv", b=BF16, out=BF16, ws=FP32, xs=FP32), set(),
     dict(HAS_BIAS=True, RELU_SQUARE=True, IS_FP32=False, FP8=True, USE_PDL=True, BLOCK_M=16, BLOCK_N=16,
          BLOCK_K=512)),
    (linear._skinny_dot_fwd_kernel, dict(x=FP32, w="*fp8e4nv", b=FP32, out=FP32, ws=FP32, xs=FP32), set(),
     dict(HAS_BIAS=False, RELU_SQUARE=False, IS_FP32=False, FP8=True, USE_PDL=True, BLOCK_M=16, BLOCK_N=16,
          BLOCK_K=256)),
    (norm._rms_norm_fwd_kernel, dict(x=BF16, z=BF16, w=BF16, out=BF16, res=BF16, res_out=BF16), {"eps"},
     dict(HAS_GATE=False, HAS_RESIDUAL=True, USE_PDL=True, BLOCK=8192)),
    (activation._relu_square_kernel, dict(x=BF16, out=BF16), set(), dict(USE_PDL=True, BLOCK=2048)),
    (conv1d._causal_conv1d_update_kernel, dict(x=BF16, w=BF16, bias=BF16, state=BF16, out=BF16), set(),
     dict(KW=4, KWP=4, HAS_BIAS=True, SILU=True, USE_PDL=True, BLOCK_C=256)),
    (ssd._ssd_state_update_kernel, dict(state=FP32, x=BF16, dt=BF16, A=FP32, B=BF16, C=BF16, D=FP32, dt_bias=FP32,
                                        y=BF16), {"dt_min", "dt_max"},
     dict(HAS_D=True, HAS_DT_BIAS=True, CLAMP=False, USE_PDL=True, BLOCK_P=16, BLOCK_N=128)),
    (attention._decode_attention_fwd_kernel, dict(q=BF16, k=BF16, v=BF16, seq_lens="*i64", o_part=FP32,
                                                  lse_part=FP32), {"scale"},
     dict(DH=128, BLOCK_H=16, BLOCK_N=64, USE_PDL=True)),
    (attention._kv_cache_write_kernel, dict(k_new=FP32, v_new=FP32, start_pos="*i64", k_cache=BF16, v_cache=BF16),
     set(), dict(DH=128, BLOCK_T=1, BLOCK_D=128, USE_PDL=True)),
    (attention._decode_attention_combine_kernel, dict(o_part=FP32, lse_part=FP32, out=BF16), set(),
     dict(DH=128, BLOCK_S=16, USE_PDL=True)),
]

# kernels launched without PDL: the sampling ones between two decode steps (every filter on: top-k
# then top-p, min-p), and the FP8 input quantization before a prefill GEMM
SAMPLING_KERNELS = [
    (fp8_linear._quantize_kernel, dict(x=BF16, scale=FP32, out="*fp8e4nv"), set(), dict(BLOCK=4096)),
    (sampling._filter_kernel, dict(x_ptr=FP32, out_ptr=FP32, cand_ptr=FP32, temp_ptr=FP32, top_k_ptr="*i32",
                                   top_p_ptr=FP32, min_p_ptr=FP32), set(),
     dict(HAS_TOP_K=True, HAS_TOP_P=True, HAS_MIN_P=True, MAX_BISECTIONS=96, BLOCK=4096, CANDIDATES=2048)),
    (sampling._gumbel_argmax_kernel, dict(x_ptr=FP32, seeds_ptr="*i64", best_ptr=FP32, at_ptr="*i32"), set(),
     dict(BLOCK=4096)),
]


def _jit(kernel):
    """The JITFunction under an @autotune."""
    return kernel.fn if isinstance(kernel, Autotuner) else kernel


def compile_for_hopper(kernel, pointers: dict, floats: set, constexprs: dict, pdl: bool = True):
    jit = _jit(kernel)
    sig = {a: "constexpr" if a in constexprs else pointers.get(a) or ("fp32" if a in floats else "i32")
           for a in jit.arg_names}
    return triton.compile(ASTSource(jit, sig, constexprs), target=GPUTarget("cuda", 90, 32),
                          options={"num_warps": 4, "launch_pdl": pdl})


def main() -> int:
    bad = 0
    for kernel, pointers, floats, constexprs in KERNELS:
        name = _jit(kernel).fn.__name__
        try:
            ptx = compile_for_hopper(kernel, pointers, floats, constexprs).asm["ptx"]
            ok = "griddepcontrol.wait" in ptx and "griddepcontrol.launch_dependents" in ptx
            # the prefetch is an unused-result asm: check it survived the compiler
            warm = not constexprs.get("PREFETCH") or "prefetch.global.L2::evict_last" in ptx
            status = ("ok" if ok and warm else "COMPILED WITHOUT griddepcontrol" if warm
                      else "COMPILED WITHOUT the L2 prefetch")
            print(f"{name:36s} sm_90 {status}" + (" (with the L2 prefetch)" if constexprs.get("PREFETCH") else ""))
            ok = ok and warm
        except Exception as e:  # report every kernel, then fail
            ok = False
            print(f"{name:36s} sm_90 FAILED: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
        bad += not ok
    for kernel, pointers, floats, constexprs in SAMPLING_KERNELS:
        name = _jit(kernel).fn.__name__
        try:
            compile_for_hopper(kernel, pointers, floats, constexprs, pdl=False)
            print(f"{name:36s} sm_90 ok")
        except Exception as e:
            bad += 1
            print(f"{name:36s} sm_90 FAILED: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
