"""Names for the parts of a DestinationRule's traffic policy that translators pass around.

A policy is written in four places (the rule, a port level of it, a subset, a port level of
a subset) and the generated models have a class for each, all of one shape; each union here
names a part wherever it was written, so one function can read them all.
"""

from __future__ import annotations

from typing import TypeAlias

from heddle.api.models._generated import networking_destinationrule as dr

TrafficPolicy: TypeAlias = (
    dr.DestinationRuleSpecTrafficPolicy | dr.DestinationRuleSpecSubsetTrafficPolicy
)
PortTrafficPolicy: TypeAlias = (
    dr.DestinationRuleSpecTrafficPolicyPortLevelSetting
    | dr.DestinationRuleSpecSubsetTrafficPolicyPortLevelSetting
)
ConnectionPool: TypeAlias = (
    dr.DestinationRuleSpecTrafficPolicyConnectionPool
    | dr.DestinationRuleSpecTrafficPolicyPortLevelSettingConnectionPool
    | dr.DestinationRuleSpecSubsetTrafficPolicyConnectionPool
    | dr.DestinationRuleSpecSubsetTrafficPolicyPortLevelSettingConnectionPool
)
TcpSettings: TypeAlias = (
    dr.DestinationRuleSpecTrafficPolicyConnectionPoolTcp
    | dr.DestinationRuleSpecTrafficPolicyPortLevelSettingConnectionPoolTcp
    | dr.DestinationRuleSpecSubsetTrafficPolicyConnectionPoolTcp
    | dr.DestinationRuleSpecSubsetTrafficPolicyPortLevelSettingConnectionPoolTcp
)
OutlierDetection: TypeAlias = (
    dr.DestinationRuleSpecTrafficPolicyOutlierDetection
    | dr.DestinationRuleSpecTrafficPolicyPortLevelSettingOutlierDetection
    | dr.DestinationRuleSpecSubsetTrafficPolicyOutlierDetection
    | dr.DestinationRuleSpecSubsetTrafficPolicyPortLevelSettingOutlierDetection
)
LoadBalancer: TypeAlias = (
    dr.DestinationRuleSpecTrafficPolicyLoadBalancer
    | dr.DestinationRuleSpecTrafficPolicyPortLevelSettingLoadBalancer
    | dr.DestinationRuleSpecSubsetTrafficPolicyLoadBalancer
    | dr.DestinationRuleSpecSubsetTrafficPolicyPortLevelSettingLoadBalancer
)
ConsistentHash: TypeAlias = (
    dr.DestinationRuleSpecTrafficPolicyLoadBalancerConsistentHash
    | dr.DestinationRuleSpecTrafficPolicyPortLevelSettingLoadBalancerConsistentHash
    | dr.DestinationRuleSpecSubsetTrafficPolicyLoadBalancerConsistentHash
    | dr.DestinationRuleSpecSubsetTrafficPolicyPortLevelSettingLoadBalancerConsistentHash
)
LocalityLbSetting: TypeAlias = (
    dr.DestinationRuleSpecTrafficPolicyLoadBalancerLocalityLbSetting
    | dr.DestinationRuleSpecTrafficPolicyPortLevelSettingLoadBalancerLocalityLbSetting
    | dr.DestinationRuleSpecSubsetTrafficPolicyLoadBalancerLocalityLbSetting
    | dr.DestinationRuleSpecSubsetTrafficPolicyPortLevelSettingLoadBalancerLocalityLbSetting
)
ClientTLS: TypeAlias = (
    dr.DestinationRuleSpecTrafficPolicyTls
    | dr.DestinationRuleSpecTrafficPolicyPortLevelSettingTls
    | dr.DestinationRuleSpecSubsetTrafficPolicyTls
    | dr.DestinationRuleSpecSubsetTrafficPolicyPortLevelSettingTls
)
