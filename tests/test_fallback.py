"""Without the compiled module, tinyllm still imports, says why it is slower, and computes the same."""
import subprocess
import sys
import textwrap


def test_import_without_the_compiled_module_warns_and_falls_back_to_numpy():
    script = textwrap.dedent("""
        import sys, warnings
        sys.modules["tinyllm._C"] = None  # makes `from .. import _C` raise ImportError, as a failed build would
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import tinyllm
            import tinyllm.nn.functional as F
        assert any("pure-NumPy reference backend" in str(w.message) for w in caught), [str(w.message) for w in caught]
        assert tinyllm.backend.cpu.native_kernels() == []
        x = tinyllm.randn(4, 8, requires_grad=True)
        F.cross_entropy(F.layer_norm(x, 8) @ tinyllm.randn(8, 3), tinyllm.tensor([0, 1, 2, 0])).backward()
        assert x.grad.shape == (4, 8)
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
