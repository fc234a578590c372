from .retrieval_metric import (VideoTextRetrievalMetric, retrieval_metrics,
                               retrieval_ranks, summarize_ranks)

__all__ = [
    'VideoTextRetrievalMetric', 'retrieval_metrics', 'retrieval_ranks',
    'summarize_ranks'
]
