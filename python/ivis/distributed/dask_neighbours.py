"""The clustered neighbour search on a Dask cluster: its per-cluster blocks as Dask tasks.

The clustering (PCA, k-means, the measured number of probed clusters) runs in the client
process, as in a search without Dask; what is spread over the workers is the search proper,
every cluster's rows against the rows of its nearest clusters, which is most of the time on
wide data. The rows are sent to the cluster once (:meth:`distributed.Client.scatter`) and
each worker fetches them once; a task then carries only the numbers of its clusters, and
returns their rows' neighbours. The blocks compute exactly what they compute in one
process, so the neighbours are identical to the search without Dask for the same seed.
"""

import contextlib

import numpy as np

# Clusters searched per task: about 4,400 query rows, so that Dask's per-task overhead
# (about a millisecond) stays small next to a task's matrix products.
CLUSTERS_PER_TASK = 16


def dask_block_runner(client, clusters_per_task=CLUSTERS_PER_TASK):
    """A block runner (see :func:`~ivis.data.neighbour_retrieval.clustered.clustered_neighbours`) on ``client``."""

    def run_blocks(blocks):
        from distributed import as_completed

        n_clusters = len(blocks)
        groups = [np.arange(start, min(start + clusters_per_task, n_clusters)) for start in range(0, n_clusters, clusters_per_task)]
        # One copy of the rows and cluster lists goes to the cluster; tasks refer to it.
        shared = client.scatter(blocks, broadcast=True, hash=False)
        futures = client.map(_search_group, [shared] * len(groups), groups, pure=False)
        try:
            for future in as_completed(futures):
                rows, found, done = future.result()
                yield rows, found, done
        finally:
            client.cancel(futures + [shared])

    return run_blocks


def _search_group(blocks, clusters):
    rows, found = blocks.search(clusters)
    return rows, found, len(clusters)


def _check_client(client):
    """``client`` itself, or a clear error when it is not a :class:`distributed.Client`."""
    try:
        from distributed import Client
    except ImportError:
        raise ImportError(
            "Finding neighbours on a Dask cluster needs the distributed package: pip install 'ivis[dask]'."
        ) from None
    if not isinstance(client, Client):
        raise TypeError(
            f"client must be a dask.distributed.Client; got {type(client).__name__}. "
            "Connect one first: Client(cluster) or Client('tcp://scheduler:8786')."
        )
    return client


@contextlib.contextmanager
def neighbours_on_dask(client, clusters_per_task=CLUSTERS_PER_TASK):
    """Run the neighbour stage of the fits inside the ``with`` block on a Dask cluster; see
    :func:`ivis.distributed.neighbours_on_dask`."""
    from ivis.data.neighbour_retrieval.search import cluster_block_runner

    token = cluster_block_runner.set(dask_block_runner(_check_client(client), int(clusters_per_task)))
    try:
        yield client
    finally:
        cluster_block_runner.reset(token)
