"""The analytics page's filter form: GET parameters checked as the reports check them."""

from django import forms
from django.core.exceptions import ValidationError

from sessions_app.analytics import WEEKLY_AFTER_DAYS
from sessions_app.scope import parse_date_bound, utc_bound

FORMATS = ("html", "csv", "json")


class EmptyRatesForm(forms.Form):
    """The page's GET filters; every field is optional."""

    since = forms.CharField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Sessions started on or after (UTC).",
    )
    until = forms.CharField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Sessions started before (UTC, exclusive).",
    )
    source = forms.ChoiceField(required=False)
    profile = forms.ChoiceField(required=False)
    bucket = forms.ChoiceField(
        required=False,
        choices=[("", "automatic"), ("day", "day"), ("week", "week (from Monday)")],
        label="Trend per",
        help_text=f"Automatic: per week when the range spans more than {WEEKLY_AFTER_DAYS} days.",
    )
    sort = forms.ChoiceField(
        required=False,
        choices=[("", "highest rate"), ("sessions", "most sessions"), ("key", "model name")],
        help_text="Tables and downloads.",
        label="Sort models by",
    )

    def __init__(self, data, *, sources, profiles=(), **kwargs):
        super().__init__(data, **kwargs)
        self.fields["source"].choices = [("", "all sources"), *((source, source) for source in sources)]
        self.fields["profile"].choices = [("", "all profiles"), *((profile, profile) for profile in profiles)]

    def clean_since(self):
        return _date_bound(self.cleaned_data["since"])

    def clean_until(self):
        return _date_bound(self.cleaned_data["until"])

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and utc_bound(since) >= utc_bound(until):
            self.add_error("until", "Until must be after since.")
        cleaned["bucket"] = cleaned.get("bucket") or None  # None: chosen from the range
        return cleaned


def _date_bound(text: str):
    if not text:
        return None
    try:
        value = parse_date_bound(text)
        utc_bound(value)  # 9999-12-31T23:00-05:00 is past the last datetime Python has
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    except ValidationError as exc:
        raise ValidationError(exc.messages) from None  # one field's errors, not a dict
    return value
