from .retrieval_metric import (VideoTextRetrievalMetric, qb_norm_ranks,
                               query_bank_stats, retrieval_metrics,
                               retrieval_ranks, summarize_ranks)

__all__ = [
    'VideoTextRetrievalMetric', 'qb_norm_ranks', 'query_bank_stats',
    'retrieval_metrics', 'retrieval_ranks', 'summarize_ranks'
]
