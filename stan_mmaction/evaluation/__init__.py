from .retrieval_metric import (STAT_RULES, VideoTextRetrievalMetric,
                               metric_rule, qb_norm_ranks, query_bank_stats,
                               retrieval_metrics, retrieval_ranks,
                               summarize_ranks)

__all__ = [
    'STAT_RULES', 'VideoTextRetrievalMetric', 'metric_rule',
    'qb_norm_ranks', 'query_bank_stats',
    'retrieval_metrics', 'retrieval_ranks', 'summarize_ranks'
]
