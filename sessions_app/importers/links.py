"""The linking pass of a run: sessions imported without their parent get linked once it exists.

Links are made in session id order, page after page, so the outcome does not depend on the batch
size. A link that would close a cycle (a -> b -> c -> a in a crafted or damaged file) is dropped:
the session whose link comes last in that order stays unlinked, its parent id kept in
``extra["hermes_dropped_parent_id"]`` and the break reported (``parent_cycles_broken``).
A parent is only ever a session of the same profile.

Linear in the number of links: the parent forest of the sessions involved is read once per run
(the stored links of the profiles concerned), and each new link is checked against it with a
union-find over tree roots (path halving), instead of walking a chain's ancestors one query per
level, which made a chain of N links cost O(N²) queries.
"""

from sessions_app.importers.report import ImportResult
from sessions_app.importers.sessions import SessionPages, parent_skipped
from sessions_app.importers.writer import DROPPED_PARENT_KEY, MISSING_PARENT_KEY, in_chunks
from sessions_app.models import Session

_ABSENT = object()


class ParentLinks:
    """Links the sessions marked with ``MISSING_PARENT_KEY``, knowing what the session pages skipped.

    ``_up`` is a union-find over the stored parent forest: each session points to its parent or to
    a node nearer its tree's root; a session not in it has no parent. It is read once per profile
    that has links to make: an import links a session only to a parent of its own profile, so a
    cycle it could close runs through that profile's links alone (the save path only ever links a
    new session, which no existing session descends from). Its changes during a page are logged and
    undone when the page's transaction is retried, so that a rolled-back link never counts."""

    def __init__(self, sessions: SessionPages):
        self.sessions, self.using, self.writer = sessions, sessions.using, sessions.writer
        self._up: dict[str, str | None] = {}  # session -> parent (or a nearer root); None: a root
        self._profiles: set[str] = set()
        self._log: list[tuple[str, object]] = []  # this page's changes to _up, to undo on a retry
        self._linked: dict[str, str] = {}  # the links this run made (to name a cycle's path)

    def count_links_ahead(self, result: ImportResult) -> None:
        """Dry run: count the links the linking pass would make, now that every skipped session row
        is known (a parent further on in the file may be one of them). Cycles are not predicted."""
        for child, parent in self.sessions.links_ahead.items():
            if parent in self.sessions.skipped:
                parent_skipped(result, child, parent)
            else:
                result.parents_linked += 1

    def page_committed(self) -> None:
        self._log = []

    def _load(self, profile: str) -> None:
        """The stored links of ``profile``, in one query."""
        if profile in self._profiles:
            return
        self._profiles.add(profile)
        linked = Session.objects.using(self.using).filter(profile=profile, parent_session__isnull=False)
        for pk, parent in linked.values_list("pk", "parent_session_id").iterator(chunk_size=10_000):
            self._up.setdefault(pk, parent)

    def _set(self, node: str, value: str | None) -> None:
        self._log.append((node, self._up.get(node, _ABSENT)))
        self._up[node] = value

    def _root(self, node: str) -> str:
        """The topmost ancestor of ``node``; the path to it is shortened for the next lookups."""
        path = []
        while (above := self._up.get(node)) is not None:
            path.append(node)
            node = above
        for visited in path[:-1]:
            self._set(visited, node)
        return node

    def _path(self, child: str, parent: str) -> list[str]:
        """The stored chain from ``parent`` up to ``child`` (only for naming a cycle in a warning)."""
        chain, node = [child, parent], parent
        rows = Session.objects.using(self.using).values_list("parent_session_id", flat=True)
        while node != child and len(chain) < 50:
            node = self._linked[node] if node in self._linked else rows.filter(pk=node).first()
            if node is None:
                break
            chain.append(node)
        return chain if node == child else [child, parent, "...", child]

    def link(self, page: ImportResult, ids: list[str]) -> None:
        """Link the sessions ``ids`` (imported without their parent) to the parent, where it exists now."""
        for node, before in reversed(self._log):  # an earlier attempt of this page was rolled back
            if before is _ABSENT:
                self._up.pop(node, None)
            else:
                self._up[node] = before
        self._log = []
        query = Session.objects.using(self.using).select_for_update().only("pk", "extra", "profile")
        sessions = sorted(in_chunks(query, ids), key=lambda s: s.pk)
        wanted = {s.extra.get(MISSING_PARENT_KEY) for s in sessions if isinstance(s.extra, dict)} - {None}
        found = dict(in_chunks(Session.objects.using(self.using).values_list("pk", "profile"), wanted))
        changed = []
        for session in sessions:
            parent = (session.extra or {}).get(MISSING_PARENT_KEY)
            if parent in found and found[parent] == session.profile:
                self._load(session.profile)
                extra = {k: v for k, v in session.extra.items() if k != MISSING_PARENT_KEY}
                if self._root(parent) == session.pk:  # the parent descends from this session: a cycle
                    extra[DROPPED_PARENT_KEY] = parent
                    page.parent_cycles_broken += 1
                    cycle = " -> ".join(self._path(session.pk, parent))
                    page.warn(f"session {session.pk}: parent link to {parent!r} would close a cycle ({cycle}); dropped")
                else:
                    session.parent_session_id = self._linked[session.pk] = parent
                    self._set(session.pk, parent)
                    page.parents_linked += 1
                session.extra = extra
                changed.append(session)
            elif self.sessions.links_ahead.get(session.pk) == parent and parent in self.sessions.skipped:
                parent_skipped(page, session.pk, parent)
        self.writer.link_parents(changed)
