"""Who may teach whom: trust, visibility and promotion.

Every lesson has a source (the scope that taught it, or the ``source=`` its feedback named) and a visibility.
A lesson from an untrusted source (an end user, by default) is private to the scope that taught it: its author
is served it, nobody else is. It is shared with the namespace when it is corroborated (the same lesson taught by
``EXPSCALE_SHARE__CORROBORATIONS`` distinct sources), confirmed by a trusted source, or approved by a reviewer.
The reader's query enforces visibility in the store (:func:`expscale_core.store._records.reader_lines`).
"""

from expscale_core.share.policy import SharePolicy, source_of
from expscale_core.share.promote import corroborate
from expscale_core.share.review import Review, ReviewItem

__all__ = ["Review", "ReviewItem", "SharePolicy", "corroborate", "source_of"]
