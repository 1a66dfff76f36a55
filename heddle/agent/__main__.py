"""`python -m heddle.agent`: the agent beside one workload's Envoy (see heddle.agent.main)."""

from heddle.agent.main import main

main()
