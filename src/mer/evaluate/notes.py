"""The summary's prose, in one place: the summary model (mer.evaluate.summary) and both renderings
(mer.evaluate.render) take every sentence from here.

`scores` is one markdown paragraph (its line break a space in html); {level}, {n} and {seed} are the
bootstrap's (mer.evaluate.pooling.BOOTSTRAP). Section notes have no full stop: summary.md adds a section's
reading of its figures after a colon.
"""

NOTES = dict(
    title="Results on {dataset} (leave-one-subject-out)",
    scores="Accuracy, UF1 (macro F1) and UAR (macro recall) are computed over the pooled predictions\nof all "
           "folds. The UF1 interval is a {level:.0%} bootstrap percentile interval ({n} resamples of the clips "
           "within each subject, seed {seed}). 'UF1, mean of folds' averages each fold's own UF1 (over the classes "
           "its subject shows), as some papers report; it is not our result. The leakage column is not a result "
           "either: it is what choosing each fold's epoch by its accuracy on the held-out subject (the test set) "
           "would have reported, as much published MER code does (Varanka et al., IEEE TAFFC 2024, measured "
           "STSTNet on CASME II going from UF1 0.704 to 0.869 that way). Our UF1 is the final epoch's, chosen by "
           "nobody. An experiment with several seeds shows mean ± standard deviation over its seeds, and the "
           "interval of its mean UF1 (every seed scored on the same resampled clips).",
    cross_dataset="A Data cell 'A → B' is a cross-dataset experiment: trained on every subject of A, tested on "
                  "every subject of B (one fold per test dataset), not leave-one-subject-out.",
    reported="Rows marked (reported) are published numbers, not rerun here.",
    reported_notes="{notes} (test-set selection: compare them with the leakage column).",
    paired_title="Paired differences of UF1",
    paired="Each difference is scored on the same bootstrap resamples of the clips both experiments predicted",
    paired_reading="an interval that contains 0 does not show either one better on this data",
    per_dataset_title="Per dataset",
    per_dataset="Each dataset's clips scored apart, from the same pooled leave-one-subject-out predictions (the "
                "MEGC 2019 composite protocol reports UF1 and UAR this way)",
    matrix="Confusion of {caption} (rows: true class, columns: predicted):",  # markdown: the line above a matrix
    bar="The bar behind a score shows its value on a 0–1 scale.",  # html: the page's bars behind the scores
)
