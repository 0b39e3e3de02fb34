"""factory_boy factories for the EDC's models."""

import factory
from django_otp.plugins.otp_totp.models import TOTPDevice

from trial.models import Site, SiteMembership, User
from trial.roles import Role, group_for

DEFAULT_PASSWORD = "correct horse battery staple"


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"{n + 10:02d}")
    name = factory.Sequence(lambda n: f"Hospital {n}")
    time_zone = "America/New_York"
    contact_email = "research@example.org"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.org")
    full_name = factory.Faker("name")
    password = factory.django.Password(DEFAULT_PASSWORD)

    @factory.post_generation
    def role(self, create, extracted: Role | None, **kwargs):
        if create and extracted:
            self.groups.add(group_for(extracted))

    @factory.post_generation
    def sites(self, create, extracted, **kwargs):
        if create and extracted:
            for site in extracted:
                SiteMembership.objects.create(user=self, site=site)

    @factory.post_generation
    def totp(self, create, extracted, **kwargs):
        """A confirmed TOTP device unless totp=False (a user who has not enrolled yet)."""
        if create and extracted is not False:
            TOTPDevice.objects.create(user=self, name="Authenticator app", confirmed=True)


# --- participants ---------------------------------------------------------------------------
import datetime as _dt  # noqa: E402

from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402

ELIGIBLE_ANSWERS = {
    "diagnosis": "ssc",
    "diagnosis_date": "2019-06",
    "capable_of_consent": True,
    "calcinosis_evidence": True,
    "calcinosis_modality": "xray",
    "calcinosis_evidence_date": _dt.date(2026, 9, 1),
    "needs_symptomatic_relief": True,
    "childbearing_potential": True,
    "pregnancy_test_type": "urine_hcg",
    "pregnancy_test_date": _dt.date(2026, 11, 2),
    "pregnancy_test_result": "negative",
}


def pdf_upload(name: str = "consent.pdf", body: bytes = b"demo consent text") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, b"%PDF-1.4\n" + body + b"\n%%EOF\n", content_type="application/pdf")
