-- Database per service: each service reads and writes only its own.
CREATE DATABASE berdaya_registry;
CREATE DATABASE berdaya_notifier;
CREATE DATABASE berdaya_funding;
CREATE DATABASE berdaya_training;
