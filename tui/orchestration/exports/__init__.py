"""Run and sweep results for other tools: CSV / JSON / TensorBoard (`runs_export`, `tb_events`)
and a sweep's result table (`results_table`)."""
