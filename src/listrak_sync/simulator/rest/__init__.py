"""The simulator's REST Email API (v1), served beside SOAP from the same account.

- :mod:`.service`: the token endpoint, the bearer check, REST faults, paging, stats.
- :mod:`.routes`: the GET routes, id resolution, filters.
- :mod:`.world`: the REST view of the SOAP account (lists, messages, activity, links,
  clickers, summaries, contacts); :mod:`.extras`: what SOAP lacks, generated from the seed.
- :mod:`.activity`: sends and the activity rows and totals built from them.
- :mod:`.params`, :mod:`.render`: query parameters, JSON envelopes.
- :mod:`.profile`: the REST variants of REST.md §10; :mod:`.truth`: the ground truth.
"""

from listrak_sync.simulator.rest.profile import RestProfile

__all__ = ["RestProfile"]
