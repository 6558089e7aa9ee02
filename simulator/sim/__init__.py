"""The simulation: the Mesa model (:mod:`~simulator.sim.model`), its agents, worker
policies (:mod:`~simulator.sim.workers`), planners (:mod:`~simulator.sim.planners`), the
population, prompts, voting and the model's LLM health.  Imports configuration, the
economic core and the inference layer; nothing here writes files."""
