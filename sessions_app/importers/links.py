"""The linking pass of a run: sessions imported without their parent get linked once it exists.

Links are made in session id order, page after page, so the outcome does not depend on the batch
size. A link that would close a cycle (a -> b -> c -> a in a crafted or damaged file) is dropped:
the session whose link comes last in that order stays unlinked, its parent id kept in
``extra["hermes_dropped_parent_id"]`` and the break reported (``parent_cycles_broken``).
A parent is only ever a session of the same profile.
"""

from sessions_app.importers.report import ImportResult
from sessions_app.importers.sessions import SessionPages, parent_skipped
from sessions_app.importers.writer import DROPPED_PARENT_KEY, MISSING_PARENT_KEY, in_chunks
from sessions_app.models import Session


class ParentLinks:
    """Links the sessions marked with ``MISSING_PARENT_KEY``, knowing what the session pages skipped."""

    def __init__(self, sessions: SessionPages):
        self.sessions, self.using, self.writer = sessions, sessions.using, sessions.writer

    def count_links_ahead(self, result: ImportResult) -> None:
        """Dry run: count the links the linking pass would make, now that every skipped session row
        is known (a parent further on in the file may be one of them). Cycles are not predicted."""
        for child, parent in self.sessions.links_ahead.items():
            if parent in self.sessions.skipped:
                parent_skipped(result, child, parent)
            else:
                result.parents_linked += 1

    def _ancestors(self, parents: set) -> dict:
        """``{session: its stored parent or None}`` for ``parents`` and every stored ancestor of theirs."""
        known, frontier = {}, set(parents)
        stored = Session.objects.using(self.using).values_list("pk", "parent_session_id")
        while frontier:
            rows = in_chunks(stored, frontier)
            known.update(rows)
            frontier = {parent for _, parent in rows if parent is not None and parent not in known}
        return known

    def link(self, page: ImportResult, ids: list[str]) -> None:
        """Link the sessions ``ids`` (imported without their parent) to the parent, where it exists now."""
        query = Session.objects.using(self.using).select_for_update().only("pk", "extra", "profile")
        sessions = sorted(in_chunks(query, ids), key=lambda s: s.pk)
        wanted = {s.extra.get(MISSING_PARENT_KEY) for s in sessions if isinstance(s.extra, dict)} - {None}
        found = dict(in_chunks(Session.objects.using(self.using).values_list("pk", "profile"), wanted))
        known = self._ancestors(set(found))
        accepted, changed = {}, []
        for session in sessions:
            parent = (session.extra or {}).get(MISSING_PARENT_KEY)
            if parent in found and found[parent] == session.profile:
                extra = {k: v for k, v in session.extra.items() if k != MISSING_PARENT_KEY}
                if cycle := self._cycle(session.pk, parent, accepted, known):
                    extra[DROPPED_PARENT_KEY] = parent
                    page.parent_cycles_broken += 1
                    page.warn(f"session {session.pk}: parent link to {parent!r} would close a cycle "
                              f"({' -> '.join(cycle)}); dropped")  # fmt: skip
                else:
                    session.parent_session_id = accepted[session.pk] = parent
                    page.parents_linked += 1
                session.extra = extra
                changed.append(session)
            elif self.sessions.links_ahead.get(session.pk) == parent and parent in self.sessions.skipped:
                parent_skipped(page, session.pk, parent)
        self.writer.link_parents(changed)

    @staticmethod
    def _cycle(child: str, parent: str, accepted: dict, known: dict) -> list[str] | None:
        """The cycle ``child -> parent -> ... -> child`` this link would close, or None."""
        path, node, seen = [child], parent, set()
        while node is not None and node not in seen:
            path.append(node)
            if node == child:
                return path
            seen.add(node)
            node = accepted[node] if node in accepted else known.get(node)
        return None
