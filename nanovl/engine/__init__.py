"""Request lifecycle: scheduler, model runner, sampler, engine."""
