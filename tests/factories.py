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
