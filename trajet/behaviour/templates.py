"""Hand-written test sentences of the behavioural suite (test data, not training data).

They were written for the suite, independently of the generator (trajet/patterns.py): questions, orders, state
and motion verbs, departure-only and arrival-only requests, stops, stations and no-trip sentences naming towns,
the way people write to a booking chatbot. Slots: `{D}` departure, `{A}` arrival, `{V}` / `{V2}` stops, `{X}` a
place named outside the trip (never an entity). `{D:station}` asks for a named station (`Lyon Part-Dieu`),
`{A:gare}` for a Paris station written after `la` (`la gare du Nord`); a slot without a kind takes its test's
place pool. `de` and `à` before a slot contract as French does (`du Havre`, `au Mans`, `d'Orléans`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MftGroup:
    """One minimum-functionality test: its templates and the place pool its bare slots draw from."""

    description: str
    pool: str
    templates: tuple[str, ...]


MFT: dict[str, MftGroup] = {
    "mft_question": MftGroup(
        "questions about a trip, with both ends or the arrival only",
        "mixed",
        (
            "Quel train me mène de {D} à {A} ce week-end ?",
            "Est-ce qu'il existe un direct entre {D} et {A} ?",
            "À quelle heure part le premier train pour {A} ?",
            "Combien de temps faut-il pour aller de {D} à {A} en train ?",
            "Y a-t-il encore des places sur le {D} - {A} de 17 h ?",
            "Tu sais s'il y a des trains qui vont à {A} depuis {D} le dimanche ?",
            "C'est quoi le moins cher pour rejoindre {A} en venant de {D} ?",
            "On peut aller de {D} à {A} sans changer ?",
            "Le dernier train pour {A}, il part à quelle heure ?",
            "Vous auriez quelque chose entre {D} et {A} jeudi soir ?",
        ),
    ),
    "mft_order": MftGroup(
        "orders in the imperative, tutoiement and vouvoiement",
        "mixed",
        (
            "Réserve-moi une place de {D} à {A} pour vendredi.",
            "Trouve-moi un trajet {D} {A} pas trop cher",
            "Cherche les trains de {D} vers {A} après 18 h.",
            "Prends-moi un aller simple pour {A} au départ de {D}.",
            "Affichez les départs de {D} pour {A}, s'il vous plaît.",
            "Mets-moi sur le train de {D} à destination de {A}.",
            "Envoie-moi les horaires {D} - {A} pour lundi",
            "Bloquez-moi deux places {D} {A} dimanche soir.",
        ),
    ),
    "mft_state_departure": MftGroup(
        "the departure given by where the person is (state verbs), the arrival by a motion verb",
        "mixed",
        (
            "Je suis à {D} et je dois rejoindre {A} ce soir.",
            "Je me trouve à {D}, comment je fais pour aller à {A} ?",
            "Actuellement à {D}, je cherche un train pour {A}.",
            "Là je suis bloqué à {D}, il me faut un train vers {A}.",
            "Je serai à {D} jeudi et je dois être à {A} vendredi matin.",
            "Je suis coincé en gare de {D}, un train pour {A} vite !",
            "On est à {D} avec les enfants, on veut aller à {A} demain.",
        ),
    ),
    "mft_motion_departure": MftGroup(
        "the departure given by a motion verb (partir, quitter, redescendre)",
        "mixed",
        (
            "Je pars de {D} demain et je vais à {A}.",
            "Je quitte {D} lundi pour rejoindre {A}.",
            "Départ {D} vers 8 h, arrivée {A} si possible avant midi.",
            "Je file de {D} direction {A} à l'aube.",
            "Je redescends de {D} sur {A} dimanche.",
        ),
    ),
    "mft_arrival_only": MftGroup(
        "only the arrival is named",
        "mixed",
        (
            "Je dois rejoindre {A} avant midi.",
            "Je rentre à {A} ce soir, il reste des trains ?",
            "J'ai besoin d'arriver à {A} pour 14 h.",
            "Je dois être à {A} lundi pour le boulot.",
            "Comment je peux me rendre à {A} demain matin ?",
            "Direction {A} pour le week-end, quels trains ?",
        ),
    ),
    "mft_departure_only": MftGroup(
        "only the departure is named",
        "mixed",
        (
            "Quels trains partent de {D} ce matin ?",
            "Je quitte {D} demain, il y a quoi comme trains ?",
            "Les départs de {D} après 20 h, s'il vous plaît.",
            "Je pars de {D} samedi, proposez-moi quelque chose.",
            "Au départ de {D}, qu'est-ce qui reste pour ce soir ?",
        ),
    ),
    "mft_via": MftGroup(
        "stops: changes, halts, 'en passant par', two stops",
        "mixed",
        (
            "Je vais de {D} à {A} avec un changement à {V}.",
            "Un trajet {D} {A} en faisant étape à {V}",
            "De {D} à {A} en passant par {V} et {V2} si possible.",
            "Je dois aller à {A} depuis {D}, avec une escale à {V} pour déjeuner.",
            "{D} → {A} via {V}, c'est possible ?",
            "Je monte à {D}, je change à {V} et je descends à {A}.",
        ),
    ),
    "mft_station": MftGroup(
        "named stations, 'la gare de X' (the city only) and Paris stations",
        "city",
        (
            "Je suis à {D:station} et je vais à {A}.",
            "Un train de {D:station} pour {A:station} demain ?",
            "Je pars de la gare de {D} pour aller à {A}.",
            "Je dois arriver à {A:station} avant 9 h.",
            "Départ de la {D:gare}, arrivée à {A} vers midi.",
            "Je descends à {A:station}, je monte à {D:station}.",
        ),
    ),
    "mft_compound": MftGroup(
        "compound names (Saint-X-sur-Y, Le/La/Les, hyphens)",
        "compound",
        (
            "Aller de {D} à {A} le plus vite possible, c'est faisable ?",
            "Je suis à {D}, je dois rejoindre {A} demain.",
            "Quel train pour {A} en partant de {D} ?",
            "Un billet {D} {A} pour samedi",
        ),
    ),
    "mft_small_commune": MftGroup(
        "small communes",
        "small",
        (
            "Je voudrais aller à {A} depuis {D} le 12.",
            "Il y a moyen de rejoindre {A} en partant de {D} ?",
            "Je suis à {D}, quel est le train le plus proche pour {A} ?",
        ),
    ),
    "mft_no_trip": MftGroup(
        "sentences that name towns but ask for no trip: no entity",
        "mixed",
        (
            "Il pleut à {X} depuis ce matin.",
            "Ma sœur habite à {X} depuis deux ans.",
            "J'ai grandi à {X}, c'est joli en automne.",
            "Le marché de {X} est-il ouvert le dimanche ?",
            "Tu connais un bon restaurant à {X} ?",
            "La mairie de {X} est fermée aujourd'hui.",
            "Combien d'habitants compte {X} ?",
            "On a passé de super vacances à {X} l'été dernier.",
            "Je travaille à {X} mais je n'aime pas trop la ville.",
            "Quelle est la météo à {X} pour demain ?",
            "Mon train de {X} a eu une heure de retard hier, je veux un remboursement.",
        ),
    ),
    "mft_unknown_place": MftGroup(
        "invented names the gazetteer lacks, followed by more words: the span stops where the name stops",
        "invented",
        (
            "Je pars de {D} demain matin pour {A} vers 9 h.",
            "Un aller pour {A} samedi, départ de {D} après le déjeuner.",
            "Je suis à {D} avec mon vélo, je veux rejoindre {A} ce soir.",
            "Je dois aller à {A} qui est tout près d'ici.",
            "Quel train va de {D} à {A} lundi prochain ?",
        ),
    ),
}

# ------------------------------------------------------------------------------ perturbation material

#: (text, before_final_punctuation): politeness, voice assistants, SMS.
PREFIXES: tuple[str, ...] = (
    "Bonjour, ", "Bonsoir ! ", "Ok Google, ", "Dis Siri, ", "Alexa, ", "Salut, ", "Slt ", "Euh ", "Allô ? ",
    "Hey Google, ", "Bonjour madame, ", "Excusez-moi, ", "Coucou ", "Dis-moi, ",
)
SUFFIXES: tuple[tuple[str, bool], ...] = (
    (" stp", True), (" svp", True), (" steuplé", True), (" s'il vous plaît", True), (" merci", True),
    (" Merci d'avance !", False), (" Merci beaucoup.", False), (" mrc", True), (" 🙏", True),
    (" Bonne journée !", False), (" Cordialement.", False), (" bisous", True),
)
#: Inserted right after a place or at the end: times, dates, prices, passengers, train numbers.
DETAILS: tuple[str, ...] = (
    "demain matin", "le 14 juillet", "vers 18 h 30", "à 7h", "pour 2 adultes", "pour moins de 50 €",
    "avec le TGV 6123", "par le train 8541", "en première classe", "samedi prochain", "ce soir",
    "pour 3 personnes", "avant 9 heures", "le 3 mars", "à 45 euros max", "le 22/05", "mardi vers 10h",
    "avec un vélo", "pour un adulte et un enfant", "en seconde",
)
#: How a stop is added by the directional test; `{V}` is the stop.
VIA_PHRASES: tuple[str, ...] = (
    " en passant par {V}", " via {V}", " avec un arrêt à {V}", " avec une correspondance à {V}",
    ", en passant par {V},",
)
#: Invented place names are built from these parts and kept only when the gazetteer lacks them.
INVENTED_ROOTS: tuple[str, ...] = (
    "Vaudre", "Montfer", "Bellan", "Kermor", "Plouza", "Rochan", "Villar", "Saulner", "Fontan", "Brévan",
    "Cormel", "Lanvé", "Hautar", "Marsel", "Trévo", "Gondre", "Ambri", "Ruffar", "Salvon", "Quincel",
    "Orbel", "Grésan", "Lormo", "Tavel", "Nouvi",
)
INVENTED_ENDINGS: tuple[str, ...] = (
    "court", "ville", "ac", "ange", "heim", "igny", "ières", "ans", "ouze", "mont", "eux", "ay", "erque",
)
INVENTED_TAILS: tuple[str, ...] = (
    "-sur-Lize", "-sur-Arvelle", "-sur-Sorne", "-le-Grand", "-le-Vieux", "-en-Brévois", "-lès-Moulins",
    "-la-Forêt", "-sur-Mèze", "-d'Ouvelle",
)
