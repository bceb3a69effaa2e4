"""Tell apart citations that would read the same: "Wang et al., 2018a" and "Wang et al., 2018b".

The author-year style of sphinxcontrib-bibtex labels CosFace and AM-Softmax both "Wang et al.,
2018", AdaCos and P2SGrad both "Zhang et al., 2019". The usual fix of author-year bibliographies
is a letter after the year, in the citation and in the list of references alike. This extension
adds it to the parsed data (references.bib is not touched): entries whose label would be the same
(same first author for three or more authors, else the same authors, and the same year) get
a, b, ... in the order of their keys.
"""
from __future__ import annotations

from collections import defaultdict
from string import ascii_lowercase

import sphinxcontrib.bibtex as bibtex


def _label(entry) -> tuple:
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = tuple(" ".join(p.last_names) for p in persons)
    return (names[:1] if len(names) > 2 else names, entry.fields.get("year", ""))


def disambiguate(data) -> dict[str, str]:
    """Give the entries of a pybtex ``BibliographyData`` that share a label a year letter.
    Returns {key: new year} for the entries changed; entries already lettered are left alone."""
    groups = defaultdict(list)
    for key, entry in data.entries.items():
        groups[_label(entry)].append(key)
    changed = {}
    for (_, year), keys in groups.items():
        if len(keys) < 2 or not year.isdigit():
            continue
        for letter, key in zip(ascii_lowercase, sorted(keys)):
            data.entries[key].fields["year"] = changed[key] = year + letter
    return changed


_process_bibdata = bibtex.process_bibdata


def _process_and_disambiguate(bibdata, bibfilenames, encoding):
    result = _process_bibdata(bibdata, bibfilenames, encoding)
    disambiguate(result.data)
    return result


def setup(app):
    # sphinxcontrib.bibtex reads its bib files through this module-level name when the builder
    # starts; this extension loads before that.
    bibtex.process_bibdata = _process_and_disambiguate
    return {"parallel_read_safe": True, "parallel_write_safe": True}
