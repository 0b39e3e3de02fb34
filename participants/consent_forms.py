"""The form for adding a version of the consent document (the PDF the ethics committee approved)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.validators import RegexValidator
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

from participants.models import ConsentDocument
from participants.services import PDF_MAGIC

# Approved consent forms are a few pages; anything larger is most likely the wrong file.
MAX_CONSENT_PDF_BYTES = 20 * 1024 * 1024


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%d", **kwargs)


class ConsentDocumentForm(forms.Form):
    document = forms.FileField(
        label=_("Consent document (PDF)"),
        widget=forms.ClearableFileInput(attrs={"accept": "application/pdf,.pdf"}),
    )
    version = forms.CharField(
        label=_("Version"),
        max_length=20,
        help_text=_("As printed on the document, e.g. 2.0."),
        # The version names the stored file (consent-documents/v<version>-<language>.pdf).
        validators=[
            RegexValidator(
                r"^[0-9A-Za-z][0-9A-Za-z._-]*$",
                _("Use letters, digits, dots, hyphens and underscores only, e.g. 2.0 or 2.1-draft."),
            )
        ],
    )
    language = forms.ChoiceField(label=_("Language"), choices=settings.LANGUAGES, initial="en")
    title = forms.CharField(label=_("Title"), max_length=200)
    approved_on = forms.DateField(label=_("Ethics approval date"), widget=DateInput())
    effective_from = forms.DateField(
        label=_("Effective from"),
        widget=DateInput(),
        help_text=_(
            "From this date the new version is the one signed, and participants who signed an "
            "earlier version in this language are flagged for re-consent."
        ),
    )
    effective_until = forms.DateField(
        label=_("Effective until"),
        required=False,
        widget=DateInput(),
        help_text=_("Leave empty while the version is in use; a newer version supersedes it."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["document"].help_text = _(
            "The version approved by the ethics committee, as a PDF of at most %(size)s."
        ) % {"size": filesizeformat(MAX_CONSENT_PDF_BYTES)}

    def clean_version(self) -> str:
        return self.cleaned_data["version"].strip()

    def clean_title(self) -> str:
        return self.cleaned_data["title"].strip()

    def clean_document(self):
        upload = self.cleaned_data["document"]
        if upload.size > MAX_CONSENT_PDF_BYTES:
            raise forms.ValidationError(
                _("The file is %(size)s; a consent document may be at most %(limit)s.")
                % {"size": filesizeformat(upload.size), "limit": filesizeformat(MAX_CONSENT_PDF_BYTES)}
            )
        # The name and the browser's content type are the sender's claims; the first bytes are not.
        head = upload.read(len(PDF_MAGIC))
        upload.seek(0)
        if head != PDF_MAGIC:
            raise forms.ValidationError(
                _("This file is not a PDF. Save the approved consent form as PDF and upload that file.")
            )
        return upload

    def clean(self):
        data = super().clean()
        approved_on, effective_from = data.get("approved_on"), data.get("effective_from")
        effective_until = data.get("effective_until")
        if approved_on and effective_from and effective_from < approved_on:
            self.add_error(
                "effective_from", _("A version cannot take effect before the ethics committee approved it.")
            )
        if effective_from and effective_until and effective_until < effective_from:
            self.add_error("effective_until", _("The end of the effective period is before its start."))
        version, language = data.get("version"), data.get("language")
        if (
            version
            and language
            and ConsentDocument.objects.filter(version=version, language=language).exists()
        ):
            self.add_error(
                "version",
                _("Version %(version)s in this language already exists; give the new version its own number.")
                % {"version": version},
            )
        return data
