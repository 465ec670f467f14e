"""Collection agents: the SDK for ALL-USE services, the host agent, the batch collector.

    from perflake.agent import Agent

    agent = Agent(service="ws4-market-integration")
    orders = agent.timer("response_time_ms", endpoint="/orders")
    with orders.time():
        submit(order)
    agent.fill(fill_id=..., order_id=..., account_id=..., strategy=..., symbol="SPY", side="sell",
               quantity=2.0, price=1.52)

See docs/agents.md for delivery guarantees and what happens to data on every failure path.
"""

from perflake.agent.core import Agent, Counter, Gauge, Histogram, Timer
from perflake.agent.validation import AgentUsageError

__all__ = ["Agent", "AgentUsageError", "Counter", "Gauge", "Histogram", "Timer"]
