"""oslo.privsep side of `deno task bench`: one context, like a service's."""
from oslo_privsep import capabilities as caps
from oslo_privsep import priv_context

bench_ctx = priv_context.PrivContext(
    "privsep_bench_oslo",
    cfg_section="privsep_bench",
    pypath=__name__ + ".bench_ctx",
    capabilities=[caps.CAP_CHOWN, caps.CAP_DAC_OVERRIDE],
)
