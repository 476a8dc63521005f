"""Bounces without a delivery-status report are known by their null sender and a bounce subject,
in the languages the product reads (servers localize the subject, the report format is not
always there)."""

from __future__ import annotations

import email
import email.policy

import pytest

from purchaseshare.bounces import BOUNCE_SUBJECT_WORDS, looks_like_bounce

LOCALIZED = {
    "en": "Undelivered Mail Returned to Sender",
    "de": "Unzustellbar: Bestätigen Sie Ihre Adresse",
    "fr": "Non remis : Confirmez votre adresse",
    "es": "No se puede entregar: Confirme su dirección",
    "it": "Non recapitabile: Conferma il tuo indirizzo",
    "nl": "Onbestelbaar: Bevestig je adres",
    "pt": "Não é possível entregar: Confirme o seu endereço",
    "sv": "Ej levererbart: Bekräfta din adress",
    "pl": "Niedostarczalne: Potwierdź swój adres",
}


def headers(subject: str, return_path: str) -> email.message.Message:
    raw = f"Return-Path: {return_path}\nFrom: mail@mx.example.net\nSubject: {subject}\n\nbody\n"
    return email.message_from_string(raw, policy=email.policy.compat32)


def test_every_language_of_the_vocabulary_has_an_example():
    assert set(LOCALIZED) == set(BOUNCE_SUBJECT_WORDS)


@pytest.mark.parametrize("language", sorted(LOCALIZED))
def test_a_localized_bounce_subject_with_a_null_sender_is_a_bounce(language: str):
    assert looks_like_bounce(headers(LOCALIZED[language], "<>"))


@pytest.mark.parametrize("language", sorted(LOCALIZED))
def test_the_same_subject_from_a_real_sender_is_not(language: str):
    # A shop may well write "non remis" about a parcel: only the null sender makes it a bounce.
    assert not looks_like_bounce(headers(LOCALIZED[language], "<orders@shop.example>"))


@pytest.mark.parametrize("subject", ["Votre commande a été expédiée", "Ihre Bestellung ist unterwegs",
                                     "Tu pedido ha sido entregado", "Your order was delivered"])
def test_an_ordinary_subject_with_a_null_sender_is_not(subject: str):
    assert not looks_like_bounce(headers(subject, "<>"))
