"""De-identification of a DICOM dataset: DICOM PS3.15 Annex E, Basic Application Level
Confidentiality Profile (Table E.1-1), with no retain options except what the trial needs.

- X: removed; Z: kept with an empty value (type 2 elements stay present); D: replaced by a dummy.
- Every UID that is not a DICOM-defined one (1.2.840.10008.*) is replaced by a keyed hash
  ("2.25." + 128 bits of HMAC-SHA-256), so the same original UID always becomes the same new
  UID for the study's key, and references between files (study, series, frame of reference)
  still match, while the original cannot be recovered without the key.
- Private elements, overlays (60xx) and curves (50xx) are removed.
- The patient is named by the study id (a pseudonym) so the file stays attributable in the trial.
- The acquisition date is read before this runs and stored in the EDC; dates leave the file.

Burned-in annotation (text in the pixels) is not touched here: the file is flagged for review.
"""

from __future__ import annotations

import hashlib
import hmac

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

DICOM_ROOT = "1.2.840.10008."
PATIENT_KEYWORDS = ("PatientName", "PatientID")

# Table E.1-1, Basic Profile column (the elements an ultrasound or SR file may carry). Where the
# table allows a choice (X/Z, X/D, Z/D) the strictest one that keeps the file valid is used.
REMOVE = "X"
EMPTY = "Z"
DUMMY = "D"
BASIC_PROFILE: dict[str, str] = {
    "AccessionNumber": EMPTY,
    "AcquisitionComments": REMOVE,
    "AcquisitionContextSequence": REMOVE,
    "AcquisitionDate": REMOVE,
    "AcquisitionDateTime": REMOVE,
    "AcquisitionDeviceProcessingDescription": REMOVE,
    "AcquisitionTime": REMOVE,
    "ActualHumanPerformersSequence": REMOVE,
    "AdditionalPatientHistory": REMOVE,
    "AdmissionID": REMOVE,
    "AdmittingDate": REMOVE,
    "AdmittingDiagnosesCodeSequence": REMOVE,
    "AdmittingDiagnosesDescription": REMOVE,
    "AdmittingTime": REMOVE,
    "Allergies": REMOVE,
    "Arbitrary": REMOVE,
    "AuthorObserverSequence": REMOVE,
    "BranchOfService": REMOVE,
    "CassetteID": REMOVE,
    "CommentsOnThePerformedProcedureStep": REMOVE,
    "ConfidentialityConstraintOnPatientDataDescription": REMOVE,
    "ContentCreatorIdentificationCodeSequence": REMOVE,
    "ContentCreatorName": EMPTY,
    "ContentDate": EMPTY,
    "ContentSequence": REMOVE,
    "ContentTime": EMPTY,
    "ContributionDescription": REMOVE,
    "CountryOfResidence": REMOVE,
    "CurrentPatientLocation": REMOVE,
    "CustodialOrganizationSequence": REMOVE,
    "DataSetTrailingPadding": REMOVE,
    "DerivationDescription": REMOVE,
    "DetectorID": REMOVE,
    "DeviceSerialNumber": REMOVE,
    "DigitalSignaturesSequence": REMOVE,
    "DischargeDiagnosisDescription": REMOVE,
    "DistributionAddress": REMOVE,
    "DistributionName": REMOVE,
    "EthnicGroup": REMOVE,
    "FrameComments": REMOVE,
    "GantryID": REMOVE,
    "GeneratorID": REMOVE,
    "HumanPerformerName": REMOVE,
    "HumanPerformerOrganization": REMOVE,
    "IconImageSequence": REMOVE,
    "IdentifyingComments": REMOVE,
    "ImageComments": REMOVE,
    "ImagePresentationComments": REMOVE,
    "ImagingServiceRequestComments": REMOVE,
    "Impressions": REMOVE,
    "InstanceCreationDate": REMOVE,
    "InstanceCreationTime": REMOVE,
    "InstitutionAddress": REMOVE,
    "InstitutionCodeSequence": REMOVE,
    "InstitutionName": REMOVE,
    "InstitutionalDepartmentName": REMOVE,
    "InsurancePlanIdentification": REMOVE,
    "IntendedRecipientsOfResultsIdentificationSequence": REMOVE,
    "InterpretationApproverSequence": REMOVE,
    "InterpretationAuthor": REMOVE,
    "InterpretationDiagnosisDescription": REMOVE,
    "InterpretationIDIssuer": REMOVE,
    "InterpretationRecorder": REMOVE,
    "InterpretationText": REMOVE,
    "InterpretationTranscriber": REMOVE,
    "IssuerOfAdmissionID": REMOVE,
    "IssuerOfPatientID": REMOVE,
    "IssuerOfServiceEpisodeID": REMOVE,
    "LastMenstrualDate": REMOVE,
    "MedicalAlerts": REMOVE,
    "MedicalRecordLocator": REMOVE,
    "MilitaryRank": REMOVE,
    "ModifiedAttributesSequence": REMOVE,
    "ModifiedImageDescription": REMOVE,
    "ModifyingDeviceID": REMOVE,
    "NameOfPhysiciansReadingStudy": REMOVE,
    "NamesOfIntendedRecipientsOfResults": REMOVE,
    "ObservationDateTime": REMOVE,
    "Occupation": REMOVE,
    "OperatorIdentificationSequence": REMOVE,
    "OperatorsName": REMOVE,
    "OrderCallbackPhoneNumber": REMOVE,
    "OrderEnteredBy": REMOVE,
    "OrderEntererLocation": REMOVE,
    "OriginalAttributesSequence": REMOVE,
    "OtherPatientIDsSequence": REMOVE,
    "OtherPatientNames": REMOVE,
    "PatientAddress": REMOVE,
    "PatientAge": REMOVE,
    "PatientBirthDate": EMPTY,
    "PatientBirthName": REMOVE,
    "PatientBirthTime": REMOVE,
    "PatientComments": REMOVE,
    "PatientID": DUMMY,
    "PatientInsurancePlanCodeSequence": REMOVE,
    "PatientMotherBirthName": REMOVE,
    "PatientName": DUMMY,
    "PatientPrimaryLanguageCodeSequence": REMOVE,
    "PatientPrimaryLanguageModifierCodeSequence": REMOVE,
    "PatientReligiousPreference": REMOVE,
    "PatientSex": EMPTY,
    "PatientSexNeutered": REMOVE,
    "PatientSize": REMOVE,
    "PatientState": REMOVE,
    "PatientTelephoneNumbers": REMOVE,
    "PatientTransportArrangements": REMOVE,
    "PatientWeight": REMOVE,
    "PerformedLocation": REMOVE,
    "PerformedProcedureStepDescription": REMOVE,
    "PerformedProcedureStepEndDate": REMOVE,
    "PerformedProcedureStepEndTime": REMOVE,
    "PerformedProcedureStepID": REMOVE,
    "PerformedProcedureStepStartDate": REMOVE,
    "PerformedProcedureStepStartTime": REMOVE,
    "PerformedStationAETitle": REMOVE,
    "PerformedStationGeographicLocationCodeSequence": REMOVE,
    "PerformedStationName": REMOVE,
    "PerformedStationNameCodeSequence": REMOVE,
    "PerformingPhysicianIdentificationSequence": REMOVE,
    "PerformingPhysicianName": REMOVE,
    "PersonAddress": REMOVE,
    "PersonName": REMOVE,
    "PersonTelephoneNumbers": REMOVE,
    "PhysicianApprovingInterpretation": REMOVE,
    "PhysiciansOfRecord": REMOVE,
    "PhysiciansOfRecordIdentificationSequence": REMOVE,
    "PhysiciansReadingStudyIdentificationSequence": REMOVE,
    "PlateID": REMOVE,
    "PreMedication": REMOVE,
    "PregnancyStatus": REMOVE,
    "ProtocolName": REMOVE,
    "ReasonForStudy": REMOVE,
    "ReasonForTheImagingServiceRequest": REMOVE,
    "ReferencedDigitalSignatureSequence": REMOVE,
    "ReferencedPatientAliasSequence": REMOVE,
    "ReferencedPatientSequence": REMOVE,
    "ReferencedPerformedProcedureStepSequence": REMOVE,
    "ReferencedSOPInstanceMACSequence": REMOVE,
    "ReferencedStudySequence": REMOVE,
    "ReferringPhysicianAddress": REMOVE,
    "ReferringPhysicianIdentificationSequence": REMOVE,
    "ReferringPhysicianName": EMPTY,
    "ReferringPhysicianTelephoneNumbers": REMOVE,
    "RegionOfResidence": REMOVE,
    "RequestAttributesSequence": REMOVE,
    "RequestedContrastAgent": REMOVE,
    "RequestedProcedureComments": REMOVE,
    "RequestedProcedureDescription": REMOVE,
    "RequestedProcedureID": REMOVE,
    "RequestedProcedureLocation": REMOVE,
    "RequestingPhysician": REMOVE,
    "RequestingService": REMOVE,
    "ResponsibleOrganization": REMOVE,
    "ResponsiblePerson": REMOVE,
    "ResultsComments": REMOVE,
    "ResultsDistributionListSequence": REMOVE,
    "ResultsIDIssuer": REMOVE,
    "ReviewerName": REMOVE,
    "ScheduledHumanPerformersSequence": REMOVE,
    "ScheduledPatientInstitutionResidence": REMOVE,
    "ScheduledPerformingPhysicianIdentificationSequence": REMOVE,
    "ScheduledPerformingPhysicianName": REMOVE,
    "ScheduledProcedureStepDescription": REMOVE,
    "ScheduledProcedureStepEndDate": REMOVE,
    "ScheduledProcedureStepEndTime": REMOVE,
    "ScheduledProcedureStepLocation": REMOVE,
    "ScheduledProcedureStepStartDate": REMOVE,
    "ScheduledProcedureStepStartTime": REMOVE,
    "ScheduledStationAETitle": REMOVE,
    "ScheduledStationGeographicLocationCodeSequence": REMOVE,
    "ScheduledStationName": REMOVE,
    "ScheduledStationNameCodeSequence": REMOVE,
    "ScheduledStudyLocation": REMOVE,
    "ScheduledStudyLocationAETitle": REMOVE,
    "SeriesDate": REMOVE,
    "SeriesDescription": REMOVE,
    "SeriesTime": REMOVE,
    "ServiceEpisodeDescription": REMOVE,
    "ServiceEpisodeID": REMOVE,
    "SmokingStatus": REMOVE,
    "SourceImageSequence": REMOVE,
    "SpecialNeeds": REMOVE,
    "StationName": REMOVE,
    "StudyComments": REMOVE,
    "StudyDate": EMPTY,
    "StudyDescription": REMOVE,
    "StudyID": EMPTY,
    "StudyIDIssuer": REMOVE,
    "StudyTime": EMPTY,
    "TextComments": REMOVE,
    "TextString": REMOVE,
    "TimezoneOffsetFromUTC": REMOVE,
    "TopicAuthor": REMOVE,
    "TopicKeywords": REMOVE,
    "TopicSubject": REMOVE,
    "TopicTitle": REMOVE,
    "VerifyingObserverIdentificationCodeSequence": EMPTY,
    "VerifyingObserverName": REMOVE,
    "VerifyingObserverSequence": REMOVE,
    "VerifyingOrganization": REMOVE,
    "VisitComments": REMOVE,
}
PROFILE_TAGS = {tag_for_keyword(keyword): action for keyword, action in BASIC_PROFILE.items()}


def new_uid(original: str, key: bytes) -> str:
    """The replacement of `original`: 2.25.<decimal of 128 bits of HMAC-SHA-256(key, uid)>
    (PS3.5 B.2: a UUID-derived UID, at most 39 digits after the root, 64 characters in all)."""
    digest = hmac.new(key, original.strip().encode("ascii", "replace"), hashlib.sha256).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def _replace_uids(value, key: bytes):
    if isinstance(value, MultiValue | list | tuple):
        return [_replace_uids(v, key) for v in value]
    text = str(value)
    if not text or text.startswith(DICOM_ROOT):
        return value
    return new_uid(text, key)


def _clean(ds: Dataset, key: bytes) -> None:
    """Apply the profile to one dataset level, then to every sequence item (iteratively; the
    nesting depth was bounded when the file was accepted)."""
    pending = [ds]
    while pending:
        dataset = pending.pop()
        dataset.remove_private_tags()
        for tag in list(dataset.keys()):
            group = tag >> 16
            if 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF:
                del dataset[tag]  # curves and overlays can hold burned-in-like text
                continue
            action = PROFILE_TAGS.get(tag)
            if action in (REMOVE, DUMMY):
                del dataset[tag]
                continue
            element = dataset[tag]
            if action == EMPTY:
                element.value = [] if element.VR == "SQ" else ""
                continue
            if element.VR == "UI" and element.value:
                element.value = _replace_uids(element.value, key)
            elif element.VR == "SQ":
                pending.extend(element.value)


def deidentify(ds: Dataset, *, key: bytes, pseudonym: str) -> Dataset:
    """De-identify `ds` in place (and its file meta) and return it.

    `key` keys the UID hash (the same for the whole study); `pseudonym` (the participant's study
    id) replaces the patient's name and id."""
    _clean(ds, key)
    ds.PatientName = pseudonym
    ds.PatientID = pseudonym
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "REMOVED"
    ds.DeidentificationMethod = "DICOM PS3.15 Annex E Basic Profile (STS EDC)"
    code = Dataset()
    code.CodeValue = "113100"
    code.CodingSchemeDesignator = "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        if "SOPInstanceUID" in ds:
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        for keyword in (
            "SourceApplicationEntityTitle",
            "SendingApplicationEntityTitle",
            "ReceivingApplicationEntityTitle",
            "PrivateInformation",
            "PrivateInformationCreatorUID",
        ):
            if keyword in meta:
                delattr(meta, keyword)
    return ds
