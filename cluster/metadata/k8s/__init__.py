"""Kubernetes metadata: pods, services, workloads, nodes and namespaces watched from the API server.

The cluster counterpart of cluster.metadata.local (a bare host): the same MetadataSource protocol
(cluster.pxl.sources), answered from list/watch of the API server instead of /proc.
"""

from cluster.metadata.k8s.source import KubernetesMetadata, Resolver
from cluster.metadata.k8s.state import RESOURCES, ClusterState

__all__ = ["RESOURCES", "ClusterState", "KubernetesMetadata", "Resolver"]
